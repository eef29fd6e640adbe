"""Counter enrollment with activation codes (柜台激活码, issue 12 point 5).

At the counter an operator makes an enrollment for a customer (subject, profile, the payer
accounts the certificate is for) and hands over a one-time code, ``XXXX-XXXX-XXXX-XXXX-
XXXX-XXXX`` (Crockford base32: the first two groups name the enrollment, the other four are
80 random bits). Only the code's slow hash is kept. With it the customer's `udun enroll`
sends a CSR made on their token to the public enrollment endpoint and gets the
certificate once; the CSR must carry the enrollment's subject. A wrong code counts against
the enrollment: after ``MAX_ATTEMPTS`` it is locked. Codes expire.
"""
from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Protocol

from asn1crypto import csr as asn1csr

from ca.customers import Customers
from ca.profiles import REQUESTABLE
from ca.storage.enrollments import EnrollmentRecord, EnrollmentStore
from ca.storage.store import CertRecord, Store
from pkicore.clock import Clock, rfc3339
from pkicore import names
from pkicore.errors import ErrorKind, PkiError
from pkicore.slowhash import check_secret, hash_secret


class Issuing(Protocol):
    """What enrollment needs of ca.authority.CertificateAuthority (not imported here: the
    API documents in webapi read this module's limits and must not reach the CA key)."""

    store: Store
    clock: Clock

    def issue(self, csr_der: bytes, profile_name: str, requester: str,
              customer: str | None = None) -> CertRecord: ...

    def chain_der(self) -> list[bytes]: ...

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"            # Crockford base32: no I, L, O, U
ID_CHARS = 8
SECRET_CHARS = 16
MAX_ATTEMPTS = 5
DEFAULT_HOURS = 72
MAX_HOURS = 30 * 24
MAX_ACCOUNTS = 20
_ACCOUNT = re.compile(r"[0-9A-Z]{6,34}")
_READS_AS = str.maketrans({"O": "0", "I": "1", "L": "1", "U": "V"})


def _normalized(code: str) -> str:
    """The code as typed (any case, with or without the hyphens and spaces), in its alphabet."""
    text = re.sub(r"[\s-]", "", code).upper().translate(_READS_AS)
    if len(text) != ID_CHARS + SECRET_CHARS or any(c not in ALPHABET for c in text):
        raise PkiError(ErrorKind.UNAUTHORIZED, "not an activation code (24 letters and digits, e.g. "
                                               "ABCD-EFGH-JKMN-PQRS-TVWX-YZ01)")
    return text


def grouped(text: str) -> str:
    return "-".join(text[i:i + 4] for i in range(0, len(text), 4))


def canonical_subject(subject: str) -> str:
    """An RFC 4514 name as udun issues and writes it (what a CSR's subject is compared with)."""
    try:
        return names.rfc4514(names.parse(subject))
    except PkiError as e:
        raise PkiError(ErrorKind.BAD_INPUT, e.message, field="subject") from None


def csr_subject(csr_der: bytes) -> str:
    """A CSR's subject, canonical as ``canonical_subject``."""
    try:
        subject = asn1csr.CertificationRequest.load(csr_der)["certification_request_info"]["subject"]
        return names.rfc4514(names.canonical(subject)[0])
    except PkiError:
        raise
    except Exception:  # noqa: BLE001  asn1crypto raises ValueError and friends on garbage
        raise PkiError(ErrorKind.BAD_CSR, "not a valid PKCS#10 certificate request") from None


def _unauthorized(detail: str) -> PkiError:
    return PkiError(ErrorKind.UNAUTHORIZED, detail)


class Enrollments:
    def __init__(self, ca: Issuing, clock: Clock | None = None) -> None:
        self.ca = ca
        self.clock = clock or ca.clock
        self.store = EnrollmentStore(ca.store)

    def create(self, subject: str, profile: str = "client", accounts: list[str] | tuple[str, ...] = (),
               hours: int = DEFAULT_HOURS, *, actor: str, customer: str | None = None,
               awaits_approval: bool = False) -> tuple[EnrollmentRecord, str]:
        """A new enrollment and its code (shown once, stored nowhere). Its certificate is
        bound to ``customer`` (ca.customers, who must exist), or, given ``accounts``
        instead, to a new customer ``ENR-<enrollment id>`` with those accounts.
        ``awaits_approval``: its code works only after ``approve`` (dual control)."""
        if profile not in REQUESTABLE:
            raise PkiError(ErrorKind.BAD_INPUT, f"profile is one of {', '.join(REQUESTABLE)}", field="profile")
        if not 1 <= hours <= MAX_HOURS:
            raise PkiError(ErrorKind.BAD_INPUT, f"a code lives 1 to {MAX_HOURS} hours", field="hours")
        if len(accounts) > MAX_ACCOUNTS or any(not _ACCOUNT.fullmatch(a) for a in accounts) \
                or len(set(accounts)) != len(accounts):
            raise PkiError(ErrorKind.BAD_INPUT, f"accounts: at most {MAX_ACCOUNTS} distinct payer account numbers "
                                                "(6-34 digits or capital letters)", field="accounts")
        if customer is not None:
            if accounts:
                raise PkiError(ErrorKind.BAD_INPUT, "give the customer or the accounts, not both: an existing "
                                                    "customer's accounts are bound to it already", field="accounts")
            Customers(self.ca.store, self.clock).must_exist(customer)
        taken = [a for a in accounts if Customers(self.ca.store, self.clock).find(1, account=a)]
        if taken:
            raise PkiError(ErrorKind.CONFLICT, f"account {taken[0]} is bound to a customer already: enroll for that "
                                               "customer (customer) instead", field="accounts")
        text = "".join(secrets.choice(ALPHABET) for _ in range(ID_CHARS + SECRET_CHARS))
        now = self.clock()
        made = customer is None and bool(accounts)
        rec = self.store.add({"id": text[:ID_CHARS], "code_hash": hash_secret(text),
                              "subject": canonical_subject(subject), "profile": profile, "accounts": list(accounts),
                              "expires_at": now + timedelta(hours=hours),
                              "customer_id": f"ENR-{text[:ID_CHARS]}" if made else customer,
                              "approved_at": None if awaits_approval else now},
                             now, actor, new_customer=made and not awaits_approval)
        return rec, grouped(text)

    def get(self, enrollment_id: str) -> EnrollmentRecord:
        rec = self.store.get(enrollment_id.upper())
        if rec is None:
            raise PkiError(ErrorKind.NOT_FOUND, f"no enrollment {enrollment_id}")
        return rec

    def approve(self, enrollment_id: str, *, actor: str) -> EnrollmentRecord:
        """The second operator approved (account-binding): the code works; a new customer
        ``ENR-<id>`` with the enrollment's accounts is made now."""
        rec = self.get(enrollment_id)
        new = rec.customer_id == f"ENR-{rec.id}" and bool(rec.accounts)
        return self.store.approve(rec.id, self.clock(), actor, new_customer=new)

    def cancel(self, enrollment_id: str, *, actor: str) -> EnrollmentRecord:
        return self.store.cancel(enrollment_id.upper(), self.clock(), actor)

    def open(self, code: str) -> EnrollmentRecord:
        """The enrollment a code opens (a wrong one counts towards the lock)."""
        text = _normalized(code)
        rec = self.store.get(text[:ID_CHARS])
        if rec is None:
            raise _unauthorized("unknown or wrong activation code")
        now = self.clock()
        if rec.locked_at is not None:
            raise _unauthorized("this enrollment is locked (too many wrong codes, or cancelled): ask the bank for a "
                                "new one")
        if rec.used_at is not None:
            raise PkiError(ErrorKind.CONFLICT, "this activation code was used already")
        if rec.expires_at <= now:
            raise _unauthorized("this activation code has expired: ask the bank for a new one")
        if not check_secret(text, rec.code_hash):
            attempts = self.store.wrong_code(rec.id, MAX_ATTEMPTS, now, f"enrollment:{rec.id}")
            left = MAX_ATTEMPTS - attempts
            raise _unauthorized("wrong activation code; " + (f"{left} tries left" if left > 0 else
                                                            "the enrollment is locked now"))
        return rec

    def enroll(self, code: str, csr_der: bytes) -> tuple[EnrollmentRecord, CertRecord]:
        """Issue the enrollment's certificate for ``csr_der`` (its subject must be the
        enrollment's), once."""
        rec = self.open(code)
        subject = csr_subject(csr_der)
        if subject != rec.subject:
            raise PkiError(ErrorKind.POLICY, f"the CSR's subject {subject!r} is not this enrollment's {rec.subject!r}")
        if rec.approved_at is None:
            raise PkiError(ErrorKind.CONFLICT, "this enrollment waits for a second operator's approval (dual "
                                               "control): ask the bank, then run this again")
        if not self.store.claim(rec.id, self.clock()):
            raise PkiError(ErrorKind.CONFLICT, "this activation code was used already")
        actor = f"enrollment:{rec.id}"
        try:
            cert = self.ca.issue(csr_der, rec.profile, requester=actor, customer=rec.customer_id)
        except BaseException:
            self.store.unclaim(rec.id)
            raise
        self.store.used(rec.id, cert.serial, self.clock(), actor)
        return self.get(rec.id), cert


def state_of(rec: EnrollmentRecord, now: datetime) -> str:
    if rec.used_at is not None:
        return "used"
    if rec.locked_at is not None:
        return "locked"
    if rec.approved_at is None and rec.expires_at > now:
        return "awaiting-approval"
    return "expired" if rec.expires_at <= now else "open"


def enrollment_json(rec: EnrollmentRecord, now: datetime) -> dict[str, object]:
    return {"enrollment_id": rec.id, "subject": rec.subject, "profile": rec.profile, "accounts": list(rec.accounts),
            "customer": rec.customer_id,
            "state": state_of(rec, now), "created_by": rec.created_by, "created_at": rfc3339(rec.created_at),
            "expires_at": rfc3339(rec.expires_at), "attempts": rec.attempts,
            "used_at": rfc3339(rec.used_at) if rec.used_at else None, "serial": rec.serial}
