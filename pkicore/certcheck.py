"""`udun cert verify`: RFC 5280 §6 path validation with revocation, an `openssl verify` peer.

Pure: certificates, CRLs, OCSP responses and the moment are inputs; pkicore.validation
(pyhanko-certvalidator underneath) does the work.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asn1crypto import x509

from pkicore.errors import ErrorKind, PkiError
from pkicore.names import rfc4514
from pkicore.validation import PURPOSES, REVOCATION, Inputs, Outcome, PolicyInputs, parse_purpose, validate

MODES = tuple(REVOCATION)
MAX_UNTRUSTED = 12
__all__ = ["MODES", "PURPOSES", "PathReport", "verify_path"]


@dataclass(frozen=True)
class PathReport:
    """The outcome of `udun cert verify`."""

    outcome: Outcome
    checks: tuple[str, ...] = field(default=())

    @property
    def valid(self) -> bool:
        return self.outcome.valid

    @property
    def error(self) -> str | None:
        return self.outcome.error

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(rfc4514(x509.Certificate.load(d).subject) for d in self.outcome.path)

    def to_json(self) -> dict[str, Any]:
        return {**self.outcome.to_json(), "checks": list(self.checks)}


def verify_path(leaf_der: bytes, anchors: Sequence[bytes], untrusted: Sequence[bytes], *, moment: datetime,
                purpose: str | Sequence[str] = "any", revocation: str = "soft",
                crls: Sequence[bytes] | None = None, ocsps: Sequence[bytes] | None = None,
                policy: PolicyInputs | None = None, max_depth: int | None = None,
                allow_weak: bool = False) -> PathReport:
    """Validate ``leaf`` to one of ``anchors`` at ``moment`` (RFC 5280 §6.1), with revocation
    (§6.3) from the CRLs and OCSP responses given."""
    names = [purpose] if isinstance(purpose, str) else list(purpose)
    wanted = tuple(p for p in (parse_purpose(n) for n in names) if p is not None)
    if revocation not in REVOCATION:
        raise PkiError(ErrorKind.BAD_INPUT, "revocation must be off, soft or hard")
    if len(untrusted) > MAX_UNTRUSTED:
        # Path building over crafted same-name CA certificates grows factorially.
        raise PkiError(ErrorKind.BAD_INPUT, f"at most {MAX_UNTRUSTED} untrusted certificates "
                                            f"(given {len(untrusted)})")
    if max_depth is not None and max_depth < 0:
        raise PkiError(ErrorKind.BAD_INPUT, "--max-depth must be 0 or more")
    crls = list(crls or [])
    inputs = Inputs(anchors=tuple(anchors), moment=moment, intermediates=tuple(untrusted), crls=tuple(crls),
                    ocsps=tuple(ocsps or ()), revocation=revocation, purposes=wanted,
                    policy=policy or PolicyInputs(), max_depth=max_depth, allow_weak=allow_weak)
    outcome = validate(leaf_der, inputs)
    if not outcome.valid:
        return PathReport(outcome)
    done = ["RFC 5280 §6.1 path processing (signatures, validity, names, constraints, policies)",
            "validity of the trust anchor itself",
            "key strength and hashes" + (" (weak algorithms allowed)" if allow_weak else
                                         " (RSA >= 2048, P-256/384/521, SHA-2)")]
    if wanted:
        done.append(f"extendedKeyUsage {', '.join(names)} (no extension: any purpose)")
    if inputs.policy.constrained:
        done.append(f"user-constrained policy set: {', '.join(outcome.policies)}")
    done.append(f"revocation: {revocation}" + {"off": " (not checked)", "hard": " (every certificate below the "
                                               "anchor)", "soft": " (the data given)"}[revocation])
    return PathReport(outcome, tuple(done))

