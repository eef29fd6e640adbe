"""RFC 5280 path validation (pkicore.validation, the one engine) behind a per-leaf cache.

Path building and the signature/constraint checks along a path do not depend on the
moment of validation, only the validity periods do. So a validated path is cached per
leaf certificate and, on a hit, only the validity periods are re-checked at the new
moment. (Revocation, which does depend on time, is checked outside this cache.)
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import crl, pem, x509

from pkicore.errors import ErrorKind, PkiError
from pkicore.names import rfc4514
from pkicore.report import Sub


@dataclass(frozen=True)
class PathCert:
    """The few facts about a certificate on a validated path that are re-checked."""

    subject: str
    not_before: datetime
    not_after: datetime
    der: bytes = b""


@dataclass(frozen=True)
class ChainResult:
    """Outcome of validating a signer certificate's chain at a moment."""

    ok: bool
    failure: Sub | None
    detail: str
    path: tuple[PathCert, ...] = ()


def pem_certs(ders: list[bytes] | tuple[bytes, ...]) -> bytes:
    """CERTIFICATE blocks (PEM) of DER certificates, in order."""
    return b"".join(pem.armor("CERTIFICATE", d) for d in ders)


def _pem_blocks(data: bytes, label: str) -> list[bytes] | None:
    """The DER of every PEM block (all must carry ``label``), or None for data that is not PEM."""
    if not pem.detect(data):
        return None
    blocks = list(pem.unarmor(data, multiple=True))
    other = next((kind for kind, _, _ in blocks if kind != label), None)
    if other:
        raise PkiError(ErrorKind.BAD_INPUT, f"expected {label} blocks, found {other}")
    return [bytes(der) for _, _, der in blocks]


def load_certs(data: bytes) -> list[bytes]:
    """DER certificates from PEM (one or many CERTIFICATE blocks) or a single DER blob."""
    try:
        ders = _pem_blocks(data, "CERTIFICATE") or [data]
        for der in ders:
            x509.Certificate.load(der, strict=True).native  # noqa: B018  force a full parse
        return ders
    except PkiError:
        raise
    except Exception as e:  # asn1crypto raises ValueError/TypeError on garbage
        raise PkiError(ErrorKind.BAD_INPUT, "not a PEM or DER certificate file") from e


def load_crls(data: bytes) -> list[bytes]:
    """DER CRLs from PEM (any number of X509 CRL blocks) or DER (one or several, back to back)."""
    try:
        ders = _pem_blocks(data, "X509 CRL")
        if ders is None:
            ders, rest = [], data
            while rest:
                one = crl.CertificateList.load(rest)       # loads the first TLV; the rest follows
                size = len(one.dump())
                ders.append(rest[:size])
                rest = rest[size:]
        for der in ders:
            crl.CertificateList.load(der, strict=True)["tbs_cert_list"].native  # noqa: B018  full parse
        if not ders:
            raise ValueError("empty")
        return ders
    except PkiError:
        raise
    except Exception as e:  # asn1crypto raises ValueError/TypeError on garbage
        raise PkiError(ErrorKind.BAD_INPUT, "not a PEM or DER CRL file") from e


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer and cert.self_signed in ("maybe", "yes")


class TrustStore:
    """Trust anchors (self-signed roots) and intermediates offered for path building.

    Immutable: a validator's path cache is only valid for the anchors it was built with.
    """

    def __init__(self, anchors: list[bytes], intermediates: list[bytes]) -> None:
        if not anchors:
            raise PkiError(ErrorKind.BAD_INPUT, "no trust anchor (self-signed root certificate) given")
        self.anchors: tuple[x509.Certificate, ...] = tuple(x509.Certificate.load(d) for d in anchors)
        self.intermediates: tuple[x509.Certificate, ...] = tuple(x509.Certificate.load(d) for d in intermediates)

    @classmethod
    def from_certs(cls, ders: list[bytes]) -> "TrustStore":
        """Split a bundle such as `udun ca chain` output: roots are anchors, the rest helpers."""
        certs = [x509.Certificate.load(d) for d in ders]
        anchors = [c.dump() for c in certs if is_self_signed(c)]
        others = [c.dump() for c in certs if not is_self_signed(c)]
        return cls(anchors, others)


def facts(cert: x509.Certificate) -> PathCert:
    validity = cert["tbs_certificate"]["validity"]
    return PathCert(
        subject=rfc4514(cert.subject),        # as reports name certificates (not asn1crypto's wording)
        not_before=validity["not_before"].native,
        not_after=validity["not_after"].native,
        der=cert.dump(),
    )


def check_period(path: tuple[PathCert, ...], moment: datetime) -> ChainResult:
    """Validity of every certificate on the path at ``moment``, the anchor's included.

    RFC 5280 §6 does not check a trust anchor's validity; we do (an expired root is a
    retired root), so that a cold and a cached validation always agree.
    """
    for i, c in enumerate(path):
        if moment > c.not_after or moment < c.not_before:
            expired = moment > c.not_after
            when = c.not_after if expired else c.not_before
            if i == 0:
                sub = Sub.EXPIRED if expired else Sub.NOT_YET_VALID
            else:
                sub = Sub.OUT_OF_BOUNDS_NO_POE
            verb = "expired" if expired else "was not yet valid"
            return ChainResult(False, sub, f"{c.subject} {verb} ({when:%Y-%m-%d %H:%M:%S}Z) at "
                                           f"{moment:%Y-%m-%d %H:%M:%S}Z", path)
    return ChainResult(True, None, f"valid path of {len(path)} certificates", path)


class ChainValidator:
    """Validates signer certificates against one TrustStore, caching built paths.

    Certificates a signer sends along are only offered to path building when the trust
    store's own intermediates do not suffice, and only the first MAX_EXTRA of them: a
    crafted set of linked CA certificates makes path building exponential.
    """

    MAX_EXTRA = 4

    def __init__(self, trust: TrustStore, cache_size: int = 10_000) -> None:
        self.trust = trust
        self._cache: OrderedDict[bytes, tuple[PathCert, ...]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def validate(self, leaf: x509.Certificate, extra: list[bytes], moment: datetime,
                 leaf_sha256: bytes | None = None) -> ChainResult:
        """``extra``: DER certificates the signer sent along (parsed only if needed)."""
        key = leaf_sha256 or hashlib.sha256(leaf.dump()).digest()
        with self._lock:
            path = self._cache.get(key)
            if path is not None:
                self._cache.move_to_end(key)
        if path is not None:
            cached = check_period(path, moment)
            if cached.ok:
                return cached
            # A cached path that is out of its period may have a renewed alternative.
        own = check_period((facts(leaf),), moment)
        if not own.ok:
            return own
        result = self._validate_fresh(leaf, [], moment)
        if result.failure is Sub.NO_CERTIFICATE_CHAIN_FOUND and extra:
            result = self._validate_fresh(leaf, [x509.Certificate.load(d) for d in extra[: self.MAX_EXTRA]], moment)
        if result.ok:
            with self._lock:
                self._cache[key] = result.path
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return check_period(result.path, moment)
        return result

    def _validate_fresh(self, leaf: x509.Certificate, extra: list[x509.Certificate], moment: datetime) -> ChainResult:
        """The one engine (pkicore.validation), without revocation: status is checked apart."""
        from pkicore.validation import Inputs, validate

        outcome = validate(leaf.dump(), Inputs(
            anchors=tuple(a.dump() for a in self.trust.anchors), moment=moment, revocation="off",
            intermediates=tuple(c.dump() for c in (*self.trust.intermediates, *extra))))
        if not outcome.valid:
            sub = outcome.sub or Sub.CERTIFICATE_CHAIN_GENERAL_FAILURE
            if sub in (Sub.EXPIRED, Sub.NOT_YET_VALID):
                sub = Sub.OUT_OF_BOUNDS_NO_POE          # a CA of the path (the leaf was checked first)
            where = f"{outcome.failing.position} {outcome.failing.subject}: " if outcome.failing else ""
            detail = outcome.error or ""
            if sub is Sub.NO_CERTIFICATE_CHAIN_FOUND:
                return ChainResult(False, sub, detail)
            return ChainResult(False, sub, f"{where}{detail} [{outcome.rule}]" if outcome.rule else where + detail)
        path = tuple(facts(x509.Certificate.load(d)) for d in outcome.path)
        return ChainResult(True, None, f"valid path of {len(path)} certificates", path)
