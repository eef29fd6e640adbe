"""Verification with evidence: the verify API's service.

A payment whose signature verifies (TOTAL_PASSED) is checked against replay and its bank
challenge, its signature value is time-stamped by our TSA (RFC 3161 Appendix A: the
signature-time-stamp attribute makes the CMS CAdES-T, EN 319 122-1 §5.3), and the record
— CMS as received, stamped CMS, the validated chain, the revocation data of the signer
and of every CA certificate of the path, report, receipt time — is stored
in one transaction with its audit entry. Only then does the answer carry an evidence_id.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ca.banks import Principal
from ca import limits
from ca.customers import binding_refusal
from ca.storage.customers import Binding, CustomerStore
from ca.otpcreds import OtpCredentials
from ca.storage.limits import LimitStore, OverLimit, Reservation
from ca.storage.otp import StepUsed
from ca.directory import CaDirectory
from ca.storage.evidence import ChallengeRefused, EvidenceStore, Replayed, spki_sha256
from ca.tsa import Stamp, TimeStampAuthority
from pkicore import tsp
from pkicore.cms_verify import Verifier
from pkicore.errors import ErrorKind, PkiError
from pkicore.pathval import pem_certs
from pkicore.report import Report, Sub, also_passed, refuse, without_check


@dataclass(frozen=True)
class Outcome:
    """The verify API's answer: a report, and the evidence that was (or had been) kept."""

    report: Report
    evidence_id: str | None = None
    first_evidence_id: str | None = None      # REPLAYED: the record of the first submission
    time_stamp: Stamp | None = None
    stored_json: str | None = None            # the answer exactly as stored with the evidence

    def json_text(self) -> str:
        """The answer as JSON text (the stored text when there is evidence: encoded once)."""
        return self.stored_json if self.stored_json is not None else json.dumps(self.to_json(), ensure_ascii=False)

    def to_json(self) -> dict[str, Any]:
        out = self.report.to_json()
        out["evidence_id"] = self.evidence_id
        if self.first_evidence_id is not None:
            out["first_evidence_id"] = self.first_evidence_id
        if self.time_stamp is not None:
            out["time_stamp"] = self.time_stamp.to_json()
        return out


@dataclass(frozen=True)
class Spend:
    """What the evidence transaction takes with the record: the payment's amount from its
    customer's day (ca.limits), the OTP's time step (credential id, step; ca.otp)."""

    reservation: Reservation | None = None
    otp: tuple[str, int] | None = None
    otp_attempt: int = 0            # the attempt it took (ca.otpcreds: counted until the step is used)


def new_evidence_id(now: datetime) -> str:
    """Sortable by time, unguessable: milliseconds then 80 random bits."""
    return f"ev_{int(now.timestamp() * 1000):012x}{secrets.token_hex(10)}"


# The checks that together say who signed: the signature verifies with the certificate's
# key, the signed attributes bind that certificate (signingCertificateV2), and the
# certificate is one a trusted CA issued (a path to a trust anchor). Anything less and the
# certificate attached to the CMS is only a claim: anyone can attach someone else's
# certificate, or mint one with any serial under a CA of their own.
_SIGNER_CHECKS = frozenset({"signature", "signing certificate", "certificate chain"})


def signer_verified(report: Report) -> bool:
    """Whether the report's signer is the one who signed (not merely the one named)."""
    if report.signer is None or report.signer_cert_der is None:
        return False
    if report.passed:
        return True
    results: dict[str, bool] = {}
    for c in report.checks:
        if c.name in _SIGNER_CHECKS:
            results[c.name] = results.get(c.name, True) and c.passed
    return results.keys() == _SIGNER_CHECKS and all(results.values())


def _audit_details(report: Report, cms: bytes, **extra: Any) -> dict[str, Any]:
    """The audit entry's details. ``signer_serial`` names the signer only when the signer is
    verified (``signer_verified``); otherwise it is null and the serial of the certificate
    the CMS pointed at, if any, is kept as ``claimed_signer_serial``."""
    signer = report.signer or {}
    tx = report.transaction or {}
    if signer_verified(report):
        assert report.signer_cert_der is not None
        who: dict[str, Any] = {"signer_serial": signer.get("serial"),
                               "signer_spki_sha256": spki_sha256(report.signer_cert_der)}
    else:
        who = {"signer_serial": None}
        if signer.get("serial"):
            who["claimed_signer_serial"] = signer["serial"]
    return {"status": report.status.value,
            "sub_indication": report.sub_indication.value if report.sub_indication else None,
            **who, "tx_id": tx.get("tx_id"), "cms_sha256": hashlib.sha256(cms).hexdigest(), **extra}


def _replayed(report: Report, first_id: str) -> Report:
    """REPLAYED, naming the first record: the same tx_id from the same key was accepted."""
    assert report.transaction is not None
    return refuse(report, "replay", f"tx_id {report.transaction['tx_id']} was accepted before as {first_id} "
                                    "(signed by the same key)", Sub.REPLAYED)


class EvidenceService:
    """Verifies signed payments and keeps the evidence of those that hold."""

    def __init__(self, ca: CaDirectory, verifier: Verifier, tsa: TimeStampAuthority) -> None:
        self.ca = ca
        self.verifier = verifier
        self.tsa = tsa
        self.store = EvidenceStore(ca.store)
        self.customers = CustomerStore(ca.store)
        self.limits = LimitStore(ca.store)
        self.otp = OtpCredentials(ca.store, ca.clock, ca.settings)
        # Whether records from before banks exist: True stays True (they are never deleted);
        # False is asked again after a minute (a node of an older udun may still write some).
        self._unowned: tuple[bool, float] | None = None

    def verify(self, bank: Principal, cms: bytes, content: bytes | None = None) -> Outcome:
        """Verify for ``bank``; store evidence (the bank's) when the payment holds. PkiError
        only for non-CMS input or when the evidence cannot be stored (then no evidence is
        claimed)."""
        received = self.ca.clock()
        with self.ca.store.one_read_per_counter():      # one status version for the whole path
            report = self.verifier.verify(cms, content)
        first, spend = None, Spend()
        if report.passed:
            report, first, spend = self._payment_rules(bank, report, received)
        if not report.passed:
            self.store.audit_only(self._subject(report), _audit_details(report, cms, first_evidence_id=first),
                                  received, bank.actor)
            return Outcome(report, first_evidence_id=first)
        try:
            return self._record(bank, report, cms, received, spend)
        except PkiError as e:
            # No evidence: the answer is an error, and the audit log still says why.
            failed = {**_audit_details(report, cms), "status": "ERROR", "error": e.kind.value}
            try:
                self.store.audit_only(self._subject(report), failed, received, bank.actor)
            except PkiError:
                pass                              # the database itself is down: nothing to add to
            raise

    # --- payment rules after the signature holds ---------------------------------------

    def _payment_rules(self, bank: Principal, report: Report, now: datetime) -> tuple[Report, str | None, Spend]:
        """The bank's challenge (a read before any signing is spent), the account binding,
        the limits and the OTP; the report, the first evidence id when it is a replay, and
        what the evidence transaction spends (the day's amount, the OTP's time step).
        Replays of challenge-less payments are found by the record's unique index
        (``_record``): no extra query on the common path, only where a refusal or an OTP
        attempt would otherwise be spent on a payment sent again.
        A replay is the same tx_id signed by the same public key and verified by the same
        bank, whichever of the key's certificates (a renewal of the same key) signed it."""
        assert report.transaction is not None and report.signer is not None
        if self._unowned is None or (not self._unowned[0] and time.monotonic() - self._unowned[1] > 60):
            self._unowned = (self.store.has_unowned_records(), time.monotonic())
        if self._unowned[0]:
            # A payment accepted before banks (migration 0010) stays spent for every bank:
            # those records are in no bank's unique index, so read them first.
            first = self.store.first_record(None, self._signer_key(report), report.transaction["tx_id"])
            if first is not None:
                return _replayed(report, first), first, Spend()
        challenge = report.transaction.get("challenge")
        if challenge is None:
            if self.ca.settings.require_challenge:
                return refuse(report, "challenge", "this server requires a bank challenge in every payment",
                              Sub.CHALLENGE_REQUIRED), None, Spend()
        else:
            first = self.store.first_record(bank.bank_id, self._signer_key(report), report.transaction["tx_id"])
            if first is not None:              # a replay names the first record, not the used challenge
                return _replayed(report, first), first, Spend()
            why = self.store.challenge_state(challenge, bank.bank_id, now)
            if why is not None:
                return refuse(report, "challenge", why.detail, why.sub), None, Spend()
        if not self.ca.settings.account_binding:
            return report, None, Spend()       # no customer: no limits, no OTP either (README)
        report, binding = self._bound(report)
        if binding is None:
            return report, None, Spend()
        report, reservation = self._within_limits(report, binding, now)
        if reservation is None:                # refused: unless it is a payment sent again
            report, first = self._unless_replayed(bank, report)
            return report, first, Spend()
        if not self._needs_otp(reservation):
            return report, None, Spend(reservation)
        # Above the threshold a payment sent again is found before its code is compared, so
        # a bank's retry spends none of the customer's attempts.
        replayed, first = self._unless_replayed(bank, report)
        if first is not None:
            return replayed, first, Spend()
        report, step, attempt = self._step_up(report, binding, bank, now)
        return report, None, Spend(reservation, step, attempt)

    def _unless_replayed(self, bank: Principal, report: Report) -> tuple[Report, str | None]:
        """A refusal of a payment sent again (a bank's retry) is REPLAYED, naming the first
        record: the first one counted against the limits, and this one spends nothing."""
        assert report.transaction is not None
        first = self.store.first_record(bank.bank_id, self._signer_key(report), report.transaction["tx_id"])
        if first is None:
            return report, None
        return _replayed(without_check(report, "limits"), first), first

    def _needs_otp(self, reservation: Reservation) -> bool:
        threshold = self.ca.settings.otp_threshold(reservation.currency)
        return threshold is not None and reservation.amount > threshold

    def _step_up(self, report: Report, binding: Binding, bank: Principal,
                 now: datetime) -> tuple[Report, tuple[str, int] | None, int]:
        """Above the bank's OTP threshold the payment must carry the customer's current code
        (ca.otp); a failure is counted now, the accepted step taken with the evidence."""
        assert report.transaction is not None
        decision = self.otp.check(binding.customer, report.transaction.get("otp"), now, bank.actor)
        if decision.sub is not None:
            return refuse(report, "otp", decision.detail, decision.sub), None, 0
        assert decision.credential is not None and decision.step is not None
        return also_passed(report, "otp", decision.detail), (decision.credential, decision.step), decision.failures

    def _bound(self, report: Report) -> tuple[Report, Binding | None]:
        """Account binding (ca.customers): the payer account must be the signer's customer's."""
        assert report.transaction is not None and report.signer is not None
        account = report.transaction["payer"]["account"]
        binding = self.customers.binding(report.signer["certificate_sha256"], account)
        why = binding_refusal(binding, report.signer["serial"], account)
        if why is not None or binding is None:
            return refuse(report, "account binding", why or "", Sub.ACCOUNT_NOT_BOUND), None
        return also_passed(report, "account binding", f"the payer account is customer {binding.customer}'s"), binding

    def _within_limits(self, report: Report, binding: Binding, now: datetime) -> tuple[Report, Reservation | None]:
        """Transaction limits (ca.limits): per payment here, per day here against what is
        committed and for good in the evidence transaction (the reservation)."""
        assert report.transaction is not None
        currency = report.transaction["currency"]
        amount = limits.hundredths(Decimal(report.transaction["amount"]))
        day = limits.day_of(now, self.ca.settings.limit_timezone)
        found = self.limits.lookup(binding.profile, binding.customer, currency, day)
        why = limits.refusal(found, amount, currency, day)
        if why is not None:
            return refuse(report, "limits", why, Sub.LIMIT_EXCEEDED), None
        reservation = Reservation(binding.customer, currency, day, amount,
                                  limits.effective(found.profile, found.customer))
        return also_passed(report, "limits", limits.within(found, currency, day)), reservation

    @staticmethod
    def _signer_key(report: Report) -> str:
        """The verified signer's replay key: ``spki_sha256`` of its certificate."""
        assert report.signer_cert_der is not None
        return spki_sha256(report.signer_cert_der)

    @staticmethod
    def _subject(report: Report) -> str:
        """``serial/tx_id`` of a verified signer (``signer_verified``), else
        ``unverified/tx_id``: the log never names a certificate whose key did not sign."""
        serial = (report.signer or {}).get("serial") if signer_verified(report) else "unverified"
        tx_id = (report.transaction or {}).get("tx_id") or "-"
        return f"{serial or '-'}/{tx_id}"

    # --- the record --------------------------------------------------------------------

    def _record(self, bank: Principal, report: Report, cms: bytes, received: datetime,
                spend: Spend | None = None) -> Outcome:
        spend = spend or Spend()
        reservation = spend.reservation
        assert report.transaction is not None and report.signer is not None and report.content is not None
        if report.revocation_data is None:
            # Verified without revocation data (a verifier with no status source): nothing
            # would prove the certificate was good, so no evidence is claimed.
            raise PkiError(ErrorKind.UNAVAILABLE, "no revocation data to keep as evidence")
        if len(report.ca_revocation_data) < len(report.chain_der) - 2:
            # Likewise for the CA certificates below the anchor: a bundle without their
            # status would not verify offline.
            raise PkiError(ErrorKind.UNAVAILABLE, "no revocation data of the CA certificates to keep as evidence")
        stamp = self.tsa.stamp(tsp.signature_time_stamp_imprint(report.signature_value))
        stamped = tsp.add_unsigned_attribute(cms, tsp.ID_AA_TIME_STAMP_TOKEN, stamp.token)
        evidence_id = new_evidence_id(received)
        answer = json.dumps(Outcome(report, evidence_id, time_stamp=stamp).to_json(), ensure_ascii=False)
        outcome = Outcome(report, evidence_id, time_stamp=stamp, stored_json=answer)
        kind, data = report.revocation_data
        row = {
            "id": evidence_id, "received_at": received,
            "signer_cert_sha256": report.signer["certificate_sha256"], "signer_spki_sha256": self._signer_key(report),
            "signer_serial": report.signer["serial"],
            "tx_id": report.transaction["tx_id"], "content": report.content, "cms": cms, "stamped_cms": stamped,
            "time_stamp": stamp.token, "chain": pem_certs(report.chain_der), "revocation_kind": kind,
            "revocation": data, "report": answer,
            "ca_revocation": report.ca_revocation_data,     # the CAs' status, issuing CA first
            "bank_id": bank.bank_id,
        }
        audit = _audit_details(report, cms, evidence_id=evidence_id, time_stamp_serial=format(stamp.serial, "x"))
        if reservation is not None:
            audit["limits"] = {"customer": reservation.customer, "day": reservation.day,
                               "amount": limits.amount_text(reservation.amount), "currency": reservation.currency}
        try:
            self.store.record(row, report.transaction.get("challenge"), audit, received, bank.actor, reservation,
                              spend.otp)
        except Replayed as r:                       # this key's tx_id is stored already
            self._give_back(spend)
            replayed = _replayed(report, r.first_id)
            self.store.audit_only(self._subject(report), _audit_details(replayed, cms, first_evidence_id=r.first_id),
                                  received, bank.actor)
            return Outcome(replayed, first_evidence_id=r.first_id)
        except OverLimit as o:                      # other payments of the day came first
            assert reservation is not None
            self._give_back(spend)
            refused = refuse(without_check(report, "limits"), "limits",
                             limits.day_refusal(reservation.limits, o.used, reservation.amount, reservation.currency,
                                                reservation.day), Sub.LIMIT_EXCEEDED)
            self.store.audit_only(self._subject(report), _audit_details(refused, cms), received, bank.actor)
            return Outcome(refused)
        except StepUsed:                            # the same code reached another node first
            assert spend.otp is not None
            decision = self.otp.refused(spend.otp[0], spend.otp_attempt, bank.actor,
                                        "code used before (at once elsewhere)")
            refused = refuse(without_check(report, "otp"), "otp", decision.detail, decision.sub or Sub.OTP_INVALID)
            self.store.audit_only(self._subject(report), _audit_details(refused, cms), received, bank.actor)
            return Outcome(refused)
        except ChallengeRefused as c:               # lost a race for the challenge
            refused = refuse(report, "challenge", c.detail, c.sub)
            self.store.audit_only(self._subject(report), _audit_details(refused, cms), received, bank.actor)
            return Outcome(refused)
        except PkiError as e:
            raise PkiError(ErrorKind.UNAVAILABLE, "the evidence record could not be stored; no evidence was "
                                                  "kept, submit the payment again") from e
        return outcome

    def _give_back(self, spend: Spend) -> None:
        """A right OTP whose payment was refused in the evidence transaction for another
        reason (the day's limit, a replay): its attempt is no failure."""
        if spend.otp is not None:
            try:
                self.otp.store.give_back(spend.otp[0])
            except PkiError:
                pass                                # at worst one try fewer: never one more

    # --- challenges --------------------------------------------------------------------

    def new_challenge(self, bank: Principal) -> tuple[str, datetime]:
        """A single-use challenge for ``bank``'s next payment, and when it expires."""
        now = self.ca.clock()
        value = secrets.token_urlsafe(24)          # 32 characters, 192 bits
        expires = now + timedelta(seconds=self.ca.settings.challenge_seconds)
        self.store.add_challenge(value, bank.bank_id, now, expires, self.ca.settings.challenge_quota)
        return value, expires
