"""OTP credentials of customers (ca.otp): enrollment, the check of a payment's code, unlock.

The check (``check``) reads the customer's credential and compares the code; a failure is
counted at once (its own transaction: a refused payment stores nothing else), and an
accepted code's time step is taken later, inside the evidence transaction
(ca.storage.otp.use_step), so the same code is accepted once on any number of nodes.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from ca import otp
from ca.customers import Customers, checked_id
from ca.storage.otp import OtpRecord, OtpStore
from ca.storage.store import Store
from config.settings import Settings
from pkicore.clock import Clock, rfc3339
from pkicore.errors import ErrorKind, PkiError
from pkicore.report import Sub

NOT_ACCEPTED = "the one-time password was not accepted"


@dataclass(frozen=True)
class OtpDecision:
    """An OTP check's outcome: ``sub`` None when the code is accepted (``step`` to take)."""

    sub: Sub | None
    detail: str
    credential: str | None = None
    step: int | None = None
    failures: int = 0               # the attempt's number in the run of failures (given back on use)


class OtpCredentials:
    def __init__(self, store: Store, clock: Clock, settings: Settings) -> None:
        self.store = OtpStore(store)
        self.customers = Customers(store, clock)
        self.clock = clock
        self.settings = settings
        self._key: bytes | None = None

    def key(self, create: bool = False) -> bytes:
        if self._key is None:
            self._key = otp.otp_key(self.settings, create=create)
        return self._key

    def enroll(self, customer: str, kind: str = "baoling", *, actor: str) -> tuple[OtpRecord, str]:
        """A new credential for the customer (the one before is revoked) and its otpauth://
        URI: the only time the secret is shown."""
        if kind not in otp.KINDS:
            raise PkiError(ErrorKind.BAD_INPUT, f"kind is one of {', '.join(otp.KINDS)}", field="kind")
        self.customers.must_exist(checked_id(customer))
        credential_id = "OTP" + secrets.token_hex(6).upper()
        secret = otp.new_secret()
        rec = self.store.add({"id": credential_id, "customer_id": customer, "kind": kind, "period": otp.KINDS[kind],
                              "digits": otp.DIGITS, "secret": otp.seal(self.key(create=True), credential_id, secret)},
                             self.clock(), actor)
        return rec, otp.provisioning_uri(secret, customer, kind)

    def check(self, customer: str, code: str | None, now: datetime, actor: str) -> OtpDecision:
        """The payment's code against the customer's credential."""
        if code is None:
            return OtpDecision(Sub.OTP_REQUIRED, "this payment needs the customer's one-time password (宝令) inside "
                                                 "the signed payment (its otp field)")
        active = self.store.active(customer)
        if active is None:
            return OtpDecision(Sub.OTP_REQUIRED, "the customer has no one-time password credential: enroll one at "
                                                 "the bank (udun otp enroll)")
        locked = OtpDecision(Sub.OTP_LOCKED, "the customer's one-time password credential is locked after "
                                             f"{otp.MAX_FAILURES} failures: the bank unlocks it", active.id)
        if active.locked:
            return locked
        failures = self.store.attempt(active.id, otp.MAX_FAILURES)      # before the code is compared
        if failures is None:
            return locked
        secret = otp.unseal(self.key(), active.id, active.secret)
        step = otp.matching_step(secret, active.period, active.digits, code, now)
        if step is None or step <= active.last_step:
            why = "wrong or late code" if step is None else "code used before"
            return self._refused(active.id, failures, actor, why)
        return OtpDecision(None, f"one-time password of credential {active.id} accepted", active.id, step, failures)

    def refused(self, credential: str, failures: int, actor: str, why: str) -> OtpDecision:
        """The attempt ``failures`` did not pass: audited, locked at the limit."""
        return self._refused(credential, failures, actor, why)

    def _refused(self, credential: str, failures: int, actor: str, why: str) -> OtpDecision:
        if self.store.failed_attempt(credential, failures, otp.MAX_FAILURES, self.clock(), actor, why):
            return OtpDecision(Sub.OTP_LOCKED, f"{NOT_ACCEPTED}; after {failures} failures in a row the credential "
                                               "is locked: the bank unlocks it", credential)
        return OtpDecision(Sub.OTP_INVALID, f"{NOT_ACCEPTED} ({otp.MAX_FAILURES - failures} tries left)", credential)

    def failed(self, credential: str, actor: str, why: str) -> OtpDecision:
        """Count a failure outside ``check`` (operators' tools, tests)."""
        failures, locked = self.store.failure(credential, otp.MAX_FAILURES, self.clock(), actor, why)
        if locked or failures >= otp.MAX_FAILURES:
            return OtpDecision(Sub.OTP_LOCKED, f"{NOT_ACCEPTED}; after {failures} failures in a row the credential "
                                               "is locked: the bank unlocks it", credential)
        return OtpDecision(Sub.OTP_INVALID, f"{NOT_ACCEPTED} ({otp.MAX_FAILURES - failures} tries left)", credential)

    def find(self, customer: str | None = None) -> list[OtpRecord]:
        return self.store.find(checked_id(customer) if customer else None)

    def unlock(self, credential_id: str, *, actor: str) -> OtpRecord:
        return self.store.unlock(credential_id.upper(), self.clock(), actor)

    def revoke(self, credential_id: str, *, actor: str) -> OtpRecord:
        return self.store.revoke(credential_id.upper(), self.clock(), actor)


def otp_json(rec: OtpRecord) -> dict[str, object]:
    """Never the secret."""
    state = "revoked" if rec.revoked_at else "locked" if rec.locked_at else "active"
    return {"credential": rec.id, "customer": rec.customer_id, "kind": rec.kind, "period": rec.period,
            "digits": rec.digits, "state": state, "failures": rec.failures, "created_by": rec.created_by,
            "created_at": rfc3339(rec.created_at), "locked_at": rfc3339(rec.locked_at) if rec.locked_at else None}
