"""The verification report (DESIGN.md "Verification report"), ETSI EN 319 102-1 codes.

An invalid signature is a report, not an exception (pyHanko's SignatureStatus model).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from pkicore.clock import rfc3339


class Status(enum.Enum):
    """EN 319 102-1 §5.1.3 main indications."""

    TOTAL_PASSED = "TOTAL_PASSED"
    TOTAL_FAILED = "TOTAL_FAILED"
    INDETERMINATE = "INDETERMINATE"


class Sub(enum.Enum):
    """EN 319 102-1 §5.1.3 sub-indications (plus udun's own where ETSI has none)."""

    # TOTAL_FAILED
    FORMAT_FAILURE = "FORMAT_FAILURE"
    HASH_FAILURE = "HASH_FAILURE"
    SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    # INDETERMINATE
    SIG_CONSTRAINTS_FAILURE = "SIG_CONSTRAINTS_FAILURE"
    CHAIN_CONSTRAINTS_FAILURE = "CHAIN_CONSTRAINTS_FAILURE"
    CERTIFICATE_CHAIN_GENERAL_FAILURE = "CERTIFICATE_CHAIN_GENERAL_FAILURE"
    CRYPTO_CONSTRAINTS_FAILURE = "CRYPTO_CONSTRAINTS_FAILURE"
    NO_SIGNING_CERTIFICATE_FOUND = "NO_SIGNING_CERTIFICATE_FOUND"
    NO_CERTIFICATE_CHAIN_FOUND = "NO_CERTIFICATE_CHAIN_FOUND"
    OUT_OF_BOUNDS_NO_POE = "OUT_OF_BOUNDS_NO_POE"
    REVOKED_NO_POE = "REVOKED_NO_POE"
    SIGNED_DATA_NOT_FOUND = "SIGNED_DATA_NOT_FOUND"
    TRY_LATER = "TRY_LATER"
    # udun's own (DESIGN.md "Verification report"): the payment, not the signature, fails.
    SIGNING_TIME_OUT_OF_WINDOW = "SIGNING_TIME_OUT_OF_WINDOW"   # signingTime too far from our clock
    REPLAYED = "REPLAYED"                       # this signer's tx_id was accepted before
    CHALLENGE_REQUIRED = "CHALLENGE_REQUIRED"   # the bank requires a challenge; none signed
    CHALLENGE_UNKNOWN = "CHALLENGE_UNKNOWN"     # never issued by us
    CHALLENGE_EXPIRED = "CHALLENGE_EXPIRED"
    CHALLENGE_USED = "CHALLENGE_USED"           # accepted once already
    ACCOUNT_NOT_BOUND = "ACCOUNT_NOT_BOUND"     # the payer account is not the signer's customer's
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"           # over the per-payment or the daily limit (交易限额)
    OTP_REQUIRED = "OTP_REQUIRED"               # above the OTP threshold without the customer's code
    OTP_INVALID = "OTP_INVALID"                 # the code was not accepted (wrong, late or used)
    OTP_LOCKED = "OTP_LOCKED"                   # the customer's OTP credential is locked


_MAIN = {
    Sub.FORMAT_FAILURE: Status.TOTAL_FAILED,
    Sub.HASH_FAILURE: Status.TOTAL_FAILED,
    Sub.SIG_CRYPTO_FAILURE: Status.TOTAL_FAILED,
    Sub.REVOKED: Status.TOTAL_FAILED,
    Sub.EXPIRED: Status.TOTAL_FAILED,
    Sub.NOT_YET_VALID: Status.TOTAL_FAILED,
    Sub.REPLAYED: Status.TOTAL_FAILED,
    Sub.CHALLENGE_UNKNOWN: Status.TOTAL_FAILED,
    Sub.CHALLENGE_EXPIRED: Status.TOTAL_FAILED,
    Sub.CHALLENGE_USED: Status.TOTAL_FAILED,
    Sub.ACCOUNT_NOT_BOUND: Status.TOTAL_FAILED,
    Sub.LIMIT_EXCEEDED: Status.TOTAL_FAILED,
    Sub.OTP_REQUIRED: Status.TOTAL_FAILED,
    Sub.OTP_INVALID: Status.TOTAL_FAILED,
    Sub.OTP_LOCKED: Status.TOTAL_FAILED,
}

# When several checks fail, the report names the first of these, in the order EN 319
# 102-1's building blocks run: format, identification of the signing certificate, then
# cryptographic verification, then validation of the certificate and its constraints.
PRIORITY = [
    Sub.FORMAT_FAILURE, Sub.SIGNED_DATA_NOT_FOUND, Sub.HASH_FAILURE, Sub.NO_SIGNING_CERTIFICATE_FOUND,
    Sub.SIG_CRYPTO_FAILURE, Sub.REVOKED, Sub.EXPIRED, Sub.NOT_YET_VALID,
    Sub.NO_CERTIFICATE_CHAIN_FOUND, Sub.REVOKED_NO_POE, Sub.OUT_OF_BOUNDS_NO_POE, Sub.CHAIN_CONSTRAINTS_FAILURE,
    Sub.CERTIFICATE_CHAIN_GENERAL_FAILURE, Sub.CRYPTO_CONSTRAINTS_FAILURE,
    Sub.SIGNING_TIME_OUT_OF_WINDOW, Sub.SIG_CONSTRAINTS_FAILURE, Sub.TRY_LATER,
    Sub.CHALLENGE_REQUIRED, Sub.CHALLENGE_UNKNOWN, Sub.CHALLENGE_EXPIRED, Sub.CHALLENGE_USED, Sub.REPLAYED,
    Sub.ACCOUNT_NOT_BOUND, Sub.LIMIT_EXCEEDED, Sub.OTP_REQUIRED, Sub.OTP_INVALID, Sub.OTP_LOCKED,
]


def main_indication(sub: Sub) -> Status:
    return _MAIN.get(sub, Status.INDETERMINATE)


@dataclass(frozen=True)
class Check:
    """One check the verifier made."""

    name: str
    passed: bool
    detail: str = ""
    failure: Sub | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.name, "result": "passed" if self.passed else "failed"}
        if self.detail:
            out["detail"] = self.detail
        if self.failure is not None:
            out["sub_indication"] = self.failure.value
        return out


@dataclass(frozen=True)
class Report:
    """The outcome of verifying one signed payment."""

    status: Status
    sub_indication: Sub | None
    message: str
    checks: tuple[Check, ...]
    signer: dict[str, Any] | None = None
    signing_time: datetime | None = None
    transaction: dict[str, Any] | None = None
    signer_cert_der: bytes | None = field(default=None, repr=False)
    revocation: dict[str, Any] | None = None          # the signer's status
    statuses: tuple[dict[str, Any], ...] = ()         # every certificate below the anchor, signer first
    # What evidence is made of (never in the JSON answer): the path signer-first, the
    # revocation data used ("ocsp"|"crl", bytes), the signature value, the signed content.
    chain_der: tuple[bytes, ...] = field(default=(), repr=False)
    revocation_data: tuple[str, bytes] | None = field(default=None, repr=False)
    ca_revocation_data: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)   # for the CAs
    signature_value: bytes = field(default=b"", repr=False)
    content: bytes | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return self.status is Status.TOTAL_PASSED

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "sub_indication": self.sub_indication.value if self.sub_indication else None,
            "message": self.message,
            "signer": self.signer,
            "signing_time": rfc3339(self.signing_time) if self.signing_time else None,
            "transaction": self.transaction,
            "revocation": self.revocation,
            "statuses": list(self.statuses),
            "checks": [c.to_json() for c in self.checks],
        }


def refuse(report: Report, name: str, detail: str, sub: Sub) -> Report:
    """A report with one more failed check (a policy refusal after the signature checks)."""
    return with_check(report, Check(name, False, detail, sub))


def also_passed(report: Report, name: str, detail: str) -> Report:
    """A report with one more check that passed (a payment rule that held)."""
    return with_check(report, Check(name, True, detail))


def with_check(report: Report, check: Check) -> Report:
    """The report with ``check`` appended and the indication concluded again."""
    return _again(report, [*report.checks, check])


def without_check(report: Report, name: str) -> Report:
    """The report without its checks named ``name`` (one that passed too early)."""
    return _again(report, [c for c in report.checks if c.name != name])


def _again(report: Report, checks: list[Check]) -> Report:
    return conclude(checks, signer=report.signer,
                    signing_time=report.signing_time, transaction=report.transaction,
                    signer_cert_der=report.signer_cert_der, revocation=report.revocation,
                    statuses=report.statuses, chain_der=report.chain_der,
                    revocation_data=report.revocation_data, ca_revocation_data=report.ca_revocation_data,
                    signature_value=report.signature_value, content=report.content)


def conclude(checks: list[Check], **fields: Any) -> Report:
    """Turn the list of checks into the final indication."""
    failed = [c for c in checks if not c.passed]
    if not failed:
        return Report(Status.TOTAL_PASSED, None, "the signature is valid", tuple(checks), **fields)
    subs = {c.failure for c in failed if c.failure}
    sub = next((s for s in PRIORITY if s in subs), Sub.FORMAT_FAILURE)
    first = next((c for c in failed if c.failure is sub), failed[0])
    message = f"{first.name}: {first.detail}" if first.detail else first.name
    return Report(main_indication(sub), sub, message, tuple(checks), **fields)
