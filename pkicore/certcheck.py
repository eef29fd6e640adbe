"""`udun cert verify`: RFC 5280 §6 path validation with revocation, like `openssl verify`
but for client signing certificates. Pure: certificates, CRLs, OCSP responses and the
moment are inputs (pyhanko-certvalidator does the §6 processing).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asn1crypto import crl as asn1crl
from asn1crypto import x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as cverr
from pyhanko_certvalidator.authority import CertTrustAnchor

from pkicore import oids  # noqa: F401  (registers the documentSigning name)
from pkicore.errors import ErrorKind, PkiError
from pkicore.pathval import check_period, facts, key_strength_problem

PURPOSES: dict[str, set[str]] = {
    "client-auth": {"client_auth"},                       # RFC 5280 §4.2.1.12
    "document-signing": {"document_signing"},             # RFC 9336 (name registered in pkicore.oids)
    "any": set(),
}
MODES = {"off": "soft-fail", "soft": "soft-fail", "hard": "hard-fail"}


@dataclass(frozen=True)
class PathReport:
    """The outcome of `udun cert verify`."""

    valid: bool
    error: str | None
    path: tuple[str, ...] = ()
    checks: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "error": self.error, "path": list(self.path), "checks": list(self.checks)}


def verify_path(leaf_der: bytes, anchors: list[bytes], untrusted: list[bytes], *, moment: datetime,
                purpose: str = "any", revocation: str = "soft", crls: list[bytes] | None = None,
                ocsps: list[bytes] | None = None) -> PathReport:
    """Validate ``leaf`` to one of ``anchors`` at ``moment`` (RFC 5280 §6.1), with revocation
    (§6.3) from the CRLs and OCSP responses given, and the anchor's own validity."""
    if purpose not in PURPOSES:
        raise PkiError(ErrorKind.BAD_INPUT, f"purpose must be one of {', '.join(PURPOSES)}")
    if revocation not in MODES:
        raise PkiError(ErrorKind.BAD_INPUT, "revocation must be off, soft or hard")
    try:
        leaf = x509.Certificate.load(leaf_der, strict=True)
        leaf.native  # noqa: B018  parse fully: garbage is bad input, not a failed validation
        anchor_certs = [x509.Certificate.load(d) for d in anchors]
        other = [x509.Certificate.load(d) for d in untrusted]
    except ValueError as e:
        raise PkiError(ErrorKind.BAD_INPUT, "not a certificate") from e
    checking = revocation != "off"
    dropped = 0
    if revocation == "soft" and crls:
        # soft: a CRL past its nextUpdate is simply not used (hard: it fails the path).
        fresh = [c for c in crls if not _stale(c, moment)]
        dropped, crls = len(crls) - len(fresh), fresh
    ctx = ValidationContext(
        # The anchor's own constraints (name constraints, path length) apply too: RFC 5280
        # §6.1.1(d) leaves that to the relying party, and a bank expects it.
        trust_roots=[CertTrustAnchor(a, derive_default_quals_from_cert=True) for a in anchor_certs],
        other_certs=other, moment=moment, allow_fetching=False,
        crls=(crls or []) if checking else [], ocsps=(ocsps or []) if checking else [],
        revocation_mode=MODES[revocation],
    )
    validator = CertificateValidator(leaf, validation_context=ctx)
    wanted = PURPOSES[purpose]
    try:
        vpath = asyncio.run(validator.async_validate_usage(
            key_usage=set(), extended_key_usage=wanted or None, extended_optional=not wanted))
    except cverr.PathBuildingError as e:
        return PathReport(False, f"no path to a trust anchor: {e}")
    except (cverr.PathValidationError, cverr.InvalidCertificateError) as e:
        return PathReport(False, str(e))
    except cverr.ValidationError as e:
        return PathReport(False, str(e))
    certs = list(reversed(list(vpath.iter_certs(include_root=True))))
    subjects = tuple(c.subject.human_friendly for c in certs)
    weak = next((p for p in map(key_strength_problem, certs) if p), None)
    if weak:
        return PathReport(False, weak, subjects)
    period = check_period(tuple(facts(c) for c in certs), moment)
    if not period.ok:
        return PathReport(False, period.detail, subjects)
    done = ["RFC 5280 §6.1 path processing", "validity of every certificate, the anchor's included",
            "key strength (RSA >= 2048, P-256/384/521)"]
    if wanted:
        done.append(f"extendedKeyUsage {purpose}")
    done.append(f"revocation: {revocation}" + ("" if checking else " (not checked)")
                + (f", {dropped} stale CRL(s) not used" if dropped else ""))
    return PathReport(True, None, subjects, tuple(done))


def _stale(crl_der: bytes, moment: datetime) -> bool:
    try:
        next_update = asn1crl.CertificateList.load(crl_der)["tbs_cert_list"]["next_update"].native
    except (ValueError, TypeError, KeyError):
        return False                      # unreadable: let the validator report it
    return next_update is not None and next_update < moment
