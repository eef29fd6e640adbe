"""Storage for OTP credentials (migration 0016, ca.otp). A customer has at most one active
credential: enrolling another revokes the one before, in the same transaction. A failure
counts (and locks at the limit) in its own transaction; an accepted code's step is taken
inside the evidence transaction (``use_step``), so a code is accepted once on any node."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from ca.storage.audit import append
from ca.storage.errors import db_errors, translated
from ca.storage.raw import RawDb
from ca.storage.schema import opt_utc, utc
from ca.storage.schema import otp_credentials as _otp
from ca.storage.store import Store
from pkicore.errors import ErrorKind, PkiError

_o = _otp.c
_ACTIVE = (select(_o.id, _o.period, _o.digits, _o.secret, _o.failures, _o.locked_at, _o.last_step)
           .where(_o.customer_id == bindparam("c"), _o.revoked_at.is_(None)))
_USE_STEP = (update(_otp).where(_o.id == bindparam("id"), _o.last_step < bindparam("step"), _o.locked_at.is_(None),
                                _o.revoked_at.is_(None))
             .values(last_step=bindparam("step"), failures=0))


@dataclass(frozen=True)
class OtpRecord:
    id: str
    customer_id: str
    kind: str
    period: int
    digits: int
    secret: str                     # sealed (ca.otp.seal)
    created_by: str
    created_at: datetime
    failures: int
    locked_at: datetime | None
    last_step: int
    revoked_at: datetime | None


@dataclass(frozen=True)
class Active:
    """What a payment's check reads of the customer's credential."""

    id: str
    period: int
    digits: int
    secret: str
    failures: int
    locked: bool
    last_step: int


class StepUsed(Exception):
    """The code's time step was taken already (the same code twice, or a race)."""


def use_step(db: RawDb, cur: Any, credential_id: str, step: int) -> None:
    """In the caller's (evidence) transaction: take the step, or StepUsed."""
    db.execute(cur, _USE_STEP, {"id": credential_id, "step": step})
    if cur.rowcount != 1:
        raise StepUsed(credential_id)


def _record(row: Any) -> OtpRecord:
    return OtpRecord(row.id, row.customer_id, row.kind, row.period, row.digits, row.secret, row.created_by,
                     utc(row.created_at), row.failures, opt_utc(row.locked_at), int(row.last_step),
                     opt_utc(row.revoked_at))


class OtpStore:
    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.raw = store.raw

    def add(self, row: dict[str, Any], now: datetime, actor: str) -> OtpRecord:
        """``row``: id, customer_id, kind, period, digits, secret (sealed). The customer's
        credential before it is revoked."""
        with db_errors(conflict="the credential id was taken; try again"), self.engine.begin() as conn:
            old = [r[0] for r in conn.execute(select(_o.id).where(_o.customer_id == row["customer_id"],
                                                                  _o.revoked_at.is_(None)))]
            if old:
                conn.execute(update(_otp).where(_o.id.in_(old)).values(revoked_at=now))
            conn.execute(insert(_otp).values(created_by=actor, created_at=now, failures=0, last_step=0, **row))
            append(conn, action="otp-enroll", actor=actor, subject=f"otp/{row['id']}",
                   details={"customer": row["customer_id"], "kind": row["kind"], "replaces": old}, now=now)
            return _record(conn.execute(select(_otp).where(_o.id == row["id"])).one())

    def active(self, customer_id: str) -> Active | None:
        row = self.raw.one(_ACTIVE, {"c": customer_id})
        if row is None:
            return None
        return Active(row[0], int(row[1]), int(row[2]), row[3], int(row[4]), row[5] is not None, int(row[6]))

    @translated
    def attempt(self, credential_id: str, limit: int) -> int | None:
        """Take one attempt before the code is compared: the failures counted with it, or
        None when the credential is locked, revoked or out of attempts. Concurrent requests
        each take their own, so no more than ``limit`` codes are ever compared in a row; an
        accepted code gives its attempt back (``use_step`` sets failures to 0)."""
        with self.engine.begin() as conn:
            taken = conn.execute(update(_otp).where(_o.id == credential_id, _o.locked_at.is_(None),
                                                    _o.revoked_at.is_(None), _o.failures < limit)
                                 .values(failures=_o.failures + 1)).rowcount == 1
            if not taken:
                return None
            return int(conn.execute(select(_o.failures).where(_o.id == credential_id)).scalar_one())

    @translated
    def give_back(self, credential_id: str) -> None:
        """An attempt whose code was right, but whose payment failed for another reason."""
        with self.engine.begin() as conn:
            conn.execute(update(_otp).where(_o.id == credential_id, _o.failures > 0, _o.locked_at.is_(None))
                         .values(failures=_o.failures - 1))

    @translated
    def failed_attempt(self, credential_id: str, failures: int, limit: int, now: datetime, actor: str,
                       why: str) -> bool:
        """The attempt's code was not accepted: audited, and the credential locked when it
        was the last one. Whether it is locked now."""
        with self.engine.begin() as conn:
            locked = failures >= limit and conn.execute(
                update(_otp).where(_o.id == credential_id, _o.locked_at.is_(None)).values(locked_at=now)).rowcount == 1
            append(conn, action="otp-lock" if locked else "otp-failure", actor=actor, subject=f"otp/{credential_id}",
                   details={"failures": failures, "why": why}, now=now)
            return locked or failures >= limit

    @translated
    def failure(self, credential_id: str, limit: int, now: datetime, actor: str, why: str) -> tuple[int, bool]:
        """One more failure in a row; locked at ``limit``. (failures, locked now)."""
        with self.engine.begin() as conn:
            conn.execute(update(_otp).where(_o.id == credential_id, _o.locked_at.is_(None))
                         .values(failures=_o.failures + 1))
            failures = int(conn.execute(select(_o.failures).where(_o.id == credential_id)).scalar_one())
            locked = failures >= limit and conn.execute(
                update(_otp).where(_o.id == credential_id, _o.locked_at.is_(None)).values(locked_at=now)).rowcount == 1
            append(conn, action="otp-lock" if locked else "otp-failure", actor=actor, subject=f"otp/{credential_id}",
                   details={"failures": failures, "why": why}, now=now)
            return failures, locked

    def unlock(self, credential_id: str, now: datetime, actor: str) -> OtpRecord:
        with db_errors(), self.engine.begin() as conn:
            done = conn.execute(update(_otp).where(_o.id == credential_id, _o.locked_at.is_not(None),
                                                   _o.revoked_at.is_(None)).values(locked_at=None, failures=0))
            if done.rowcount != 1:
                raise PkiError(ErrorKind.CONFLICT, f"OTP credential {credential_id} is not locked (or unknown, or "
                                                   "revoked)")
            append(conn, action="otp-unlock", actor=actor, subject=f"otp/{credential_id}", details={}, now=now)
            return _record(conn.execute(select(_otp).where(_o.id == credential_id)).one())

    def revoke(self, credential_id: str, now: datetime, actor: str) -> OtpRecord:
        with db_errors(), self.engine.begin() as conn:
            done = conn.execute(update(_otp).where(_o.id == credential_id, _o.revoked_at.is_(None))
                                .values(revoked_at=now))
            if done.rowcount != 1:
                raise PkiError(ErrorKind.NOT_FOUND, f"no active OTP credential {credential_id}")
            append(conn, action="otp-revoke", actor=actor, subject=f"otp/{credential_id}", details={}, now=now)
            return _record(conn.execute(select(_otp).where(_o.id == credential_id)).one())

    @translated
    def find(self, customer_id: str | None = None, limit: int = 100) -> list[OtpRecord]:
        stmt = select(_otp).order_by(_o.created_at.desc()).limit(limit)
        if customer_id is not None:
            stmt = stmt.where(_o.customer_id == customer_id)
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(stmt)]

    @translated
    def get(self, credential_id: str) -> OtpRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_otp).where(_o.id == credential_id)).first()
        return _record(row) if row is not None else None
