"""The status *now* of every certificate below the trust anchor of a validated path.

The verdict is pyhanko-certvalidator's RFC 5280 §6.3 processing (through
pkicore.validation, revocation "hard": each certificate must be shown unrevoked by valid,
fresh data). This module only gathers the revocation data, reads which piece answers for
which certificate (for the report: source, thisUpdate, age), and remembers verdicts: the
same path with the same data gives the same verdict while every piece is fresh, so a
payment verifier pays for the library once per (path, data), not once per payment.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from asn1crypto import crl as asn1crl
from asn1crypto import ocsp, x509

from pkicore.clock import rfc3339
from pkicore.names import rfc4514 as _rfc4514
from pkicore.validation import Inputs, Outcome, validate

CLOCK_SKEW = timedelta(minutes=5)

# A status source: (certificate DER, issuer DER) -> raw revocation data [("ocsp"|"crl", bytes)].
StatusSource = Callable[[bytes, bytes], list[tuple[str, bytes]]]


@dataclass(frozen=True)
class StatusInfo:
    """One certificate's status, as established for the report."""

    status: str                        # good | revoked | on_hold | unusable | unchecked
    source: str | None                 # OCSP | CRL
    this_update: datetime | None = None
    next_update: datetime | None = None
    revoked_at: datetime | None = None
    reason: str | None = None
    detail: str = ""
    raw: bytes = field(default=b"", repr=False)   # the response or CRL, kept as evidence
    subject: str = ""
    serial: str = ""
    position: str = ""                 # end-entity | intermediate N

    def to_json(self, now: datetime) -> dict[str, Any]:
        def t(v: datetime | None) -> str | None:
            return rfc3339(v) if v else None
        return {
            "certificate": self.subject, "serial": self.serial, "position": self.position,
            "source": self.source, "status": self.status, "this_update": t(self.this_update),
            "next_update": t(self.next_update),
            "age_seconds": int((now - self.this_update).total_seconds()) if self.this_update else None,
            "revoked_at": t(self.revoked_at), "reason": self.reason, "detail": self.detail,
        }


@dataclass(frozen=True)
class PathStatus:
    """The status of each certificate below the anchor, leaf first, and the verdict."""

    statuses: tuple[StatusInfo, ...]
    outcome: Outcome
    # Beyond this the verdict is not reused whatever the data's windows say (the earliest
    # notAfter of a responder certificate that signed an answer used).
    valid_until: datetime | None = None

    @property
    def failing(self) -> StatusInfo | None:
        return next((s for s in self.statuses if s.status not in ("good", "unchecked")), None)

    def fresh_at(self, now: datetime) -> bool:
        """Every piece of data used is inside its thisUpdate..nextUpdate window."""
        if self.valid_until is not None and now > self.valid_until:
            return False
        for s in self.statuses:
            if s.status == "unchecked":
                continue
            if s.this_update is None or s.next_update is None:
                return False
            if s.this_update > now + CLOCK_SKEW or now > s.next_update:
                return False
        return True


def _piece_for(cert: x509.Certificate, issuer: x509.Certificate,
               raw: list[tuple[str, bytes]]) -> tuple[str, bytes, datetime | None, datetime | None] | None:
    """The piece of data that answers for ``cert`` and its update times (read, not checked)."""
    for kind, data in raw:
        try:
            if kind == "ocsp":
                basic = ocsp.OCSPResponse.load(data).basic_ocsp_response
                for single in basic["tbs_response_data"]["responses"]:
                    if single["cert_id"]["serial_number"].native == cert.serial_number:
                        return "OCSP", data, single["this_update"].native, single["next_update"].native
            else:
                tbs = asn1crl.CertificateList.load(data)["tbs_cert_list"]
                if tbs["issuer"] == cert.issuer or tbs["issuer"] == issuer.subject:
                    return "CRL", data, tbs["this_update"].native, tbs["next_update"].native
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
    return None


def evaluate(path: tuple[bytes, ...], raw: list[list[tuple[str, bytes]]], moment: datetime) -> PathStatus:
    """The library's verdict on ``path`` (leaf first, anchor last) with ``raw[i]`` the data
    gathered for ``path[i]``, and each certificate's status for the report."""
    certs = [x509.Certificate.load(d) for d in path]
    crls = tuple(d for pieces in raw for kind, d in pieces if kind == "crl")
    ocsps = tuple(d for pieces in raw for kind, d in pieces if kind == "ocsp")
    # The certificates' periods were checked strictly (pkicore.pathval) before; the tolerance
    # is for answers produced a moment after ``moment`` (a responder signing under load).
    outcome = validate(path[0], Inputs(anchors=(path[-1],), moment=moment, intermediates=path[1:-1],
                                       crls=crls, ocsps=ocsps, revocation="hard", time_tolerance=CLOCK_SKEW))
    failing_sha = outcome.failing.sha256 if outcome.failing and not outcome.valid else None
    statuses: list[StatusInfo] = []
    # The library works from the anchor down: above the failing certificate all is good,
    # below it nothing was checked.
    seen_failure = False
    for i in reversed(range(len(certs) - 1)):
        cert, issuer = certs[i], certs[i + 1]
        piece = _piece_for(cert, issuer, raw[i] if i < len(raw) else [])
        source, data, this_update, next_update = piece if piece else (None, b"", None, None)
        ident = {"subject": _rfc4514(cert.subject), "serial": format(cert.serial_number, "x"),
                 "position": "end-entity" if i == 0 else f"intermediate {len(certs) - 1 - i}"}
        if outcome.valid:
            status, detail = "good", ""
        elif seen_failure:
            status, detail = "unchecked", "not checked: a certificate above it failed"
        elif failing_sha == hashlib.sha256(path[i]).hexdigest():
            seen_failure = True
            if outcome.revoked_at is not None:
                status = "on_hold" if outcome.reason == "certificateHold" else "revoked"
                detail = outcome.error or ""
            else:
                status, detail = "unusable", outcome.error or "no valid revocation information"
        else:
            status, detail = "good", ""
        statuses.append(StatusInfo(status, source, this_update, next_update, outcome.revoked_at
                                   if status in ("revoked", "on_hold") else None,
                                   outcome.reason if status in ("revoked", "on_hold") else None,
                                   detail, data, **ident))
    if not outcome.valid and not seen_failure:
        # A failure the library did not pin on a certificate below the anchor.
        statuses = [StatusInfo("unusable", s.source, s.this_update, s.next_update, detail=outcome.error or "",
                               raw=s.raw, subject=s.subject, serial=s.serial, position=s.position)
                    if s.position == "end-entity" else s for s in statuses]
    return PathStatus(tuple(reversed(statuses)), outcome, _responders_until(ocsps))


def _responders_until(ocsps: tuple[bytes, ...]) -> datetime | None:
    """The earliest notAfter of the certificates carried in the OCSP responses (delegated
    responders): a verdict resting on a responder that has expired is not reused."""
    ends = []
    for data in ocsps:
        try:
            for c in ocsp.OCSPResponse.load(data).basic_ocsp_response["certs"] or []:
                ends.append(c["tbs_certificate"]["validity"]["not_after"].native)
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
    return min(ends) if ends else None


class StatusCache:
    """PathStatus by (path, data), reused while all its data is fresh (bounded, LRU)."""

    def __init__(self, size: int = 10_000) -> None:
        self._items: OrderedDict[bytes, PathStatus] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def status(self, path: tuple[bytes, ...], raw: list[list[tuple[str, bytes]]], moment: datetime) -> PathStatus:
        h = hashlib.sha256()
        for d in path:
            h.update(hashlib.sha256(d).digest())
        for pieces in raw:
            h.update(b"|")
            for kind, d in pieces:
                h.update(kind.encode() + hashlib.sha256(d).digest())
        key = h.digest()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
        if hit is not None and hit.fresh_at(moment):
            return hit
        result = evaluate(path, raw, moment)
        if result.outcome.valid or result.failing is not None and result.failing.status in ("revoked", "on_hold"):
            with self._lock:
                self._items[key] = result
                if len(self._items) > self._size:
                    self._items.popitem(last=False)
        return result
