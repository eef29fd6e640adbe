"""Storage for counter enrollments (migration 0013). Each change is one transaction with its
audit entry; a wrong code, the lock and the use are conditional UPDATEs, so concurrent
attempts count one by one and a code is used once."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from ca.storage.audit import append
from ca.storage.customers import insert_customer
from ca.storage.errors import db_errors, translated
from ca.storage.schema import enrollments as _enr
from ca.storage.schema import opt_utc, utc
from ca.storage.store import Store
from pkicore.errors import ErrorKind, PkiError

_e = _enr.c


@dataclass(frozen=True)
class EnrollmentRecord:
    id: str
    code_hash: str
    subject: str
    profile: str
    accounts: tuple[str, ...]
    created_by: str
    created_at: datetime
    expires_at: datetime
    attempts: int
    locked_at: datetime | None
    used_at: datetime | None
    serial: str | None
    customer_id: str | None = None        # the customer its certificate is bound to (0014)
    approved_at: datetime | None = None   # None: waits for a second operator (account-binding)


def _record(row: Any) -> EnrollmentRecord:
    return EnrollmentRecord(row.id, row.code_hash, row.subject, row.profile, tuple(json.loads(row.accounts)),
                            row.created_by, utc(row.created_at), utc(row.expires_at), row.attempts,
                            opt_utc(row.locked_at), opt_utc(row.used_at), row.serial, row.customer_id,
                            opt_utc(row.approved_at))


class EnrollmentStore:
    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    def add(self, row: dict[str, Any], now: datetime, actor: str, new_customer: bool = False) -> EnrollmentRecord:
        """``row``: id, code_hash, subject, profile, accounts (list), expires_at, customer_id,
        approved_at. ``new_customer``: make that customer (named by the subject) with the
        accounts, in the same transaction (an enrollment that waits for approval makes it
        at approval instead: ``approve``)."""
        with db_errors(conflict="the enrollment id was taken, or an account is bound to a customer already"), \
                self.engine.begin() as conn:
            if new_customer:
                insert_customer(conn, row["customer_id"], row["subject"], row["accounts"], now, actor)
            conn.execute(insert(_enr).values(created_by=actor, created_at=now, attempts=0,
                                             **{**row, "accounts": json.dumps(row["accounts"])}))
            append(conn, action="enrollment-add", actor=actor, subject=f"enrollment/{row['id']}",
                   details={"subject": row["subject"], "profile": row["profile"], "accounts": row["accounts"],
                            "customer": row["customer_id"], "expires_at": row["expires_at"].isoformat()}, now=now)
            return _record(conn.execute(select(_enr).where(_e.id == row["id"])).one())

    @translated
    def get(self, enrollment_id: str) -> EnrollmentRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_enr).where(_e.id == enrollment_id)).first()
        return _record(row) if row is not None else None

    @translated
    def recent(self, limit: int) -> list[EnrollmentRecord]:
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(select(_enr).order_by(_e.created_at.desc()).limit(limit))]

    @translated
    def wrong_code(self, enrollment_id: str, max_attempts: int, now: datetime, actor: str) -> int:
        """Count one wrong code; lock at ``max_attempts``. The attempts so far."""
        with self.engine.begin() as conn:
            conn.execute(update(_enr).where(_e.id == enrollment_id, _e.locked_at.is_(None))
                         .values(attempts=_e.attempts + 1))
            attempts = int(conn.execute(select(_e.attempts).where(_e.id == enrollment_id)).scalar_one())
            locked = attempts >= max_attempts and conn.execute(
                update(_enr).where(_e.id == enrollment_id, _e.locked_at.is_(None)).values(locked_at=now)).rowcount == 1
            append(conn, action="enrollment-lock" if locked else "enrollment-wrong-code", actor=actor,
                   subject=f"enrollment/{enrollment_id}", details={"attempts": attempts}, now=now)
            return attempts

    def approve(self, enrollment_id: str, now: datetime, actor: str, new_customer: bool = False) -> EnrollmentRecord:
        """The second operator's approval (ca.approvals, account-binding) came: usable now.
        ``new_customer``: the enrollment's customer (``ENR-<id>``) with its accounts is made
        now, in the same transaction (not before: the approver saw those accounts)."""
        with db_errors(conflict="an account of the enrollment is bound to a customer already"), \
                self.engine.begin() as conn:
            row = conn.execute(select(_enr).where(_e.id == enrollment_id, _e.approved_at.is_(None),
                                                  _e.locked_at.is_(None))).first()
            if row is None:
                raise PkiError(ErrorKind.CONFLICT, f"enrollment {enrollment_id} is approved already, cancelled or "
                                                   "unknown")
            if new_customer:
                insert_customer(conn, row.customer_id, row.subject, json.loads(row.accounts), now, actor)
            conn.execute(update(_enr).where(_e.id == enrollment_id).values(approved_at=now))
            append(conn, action="enrollment-approve", actor=actor, subject=f"enrollment/{enrollment_id}",
                   details={}, now=now)
            return _record(conn.execute(select(_enr).where(_e.id == enrollment_id)).one())

    @translated
    def claim(self, enrollment_id: str, now: datetime) -> bool:
        """Take the enrollment for one issuance: True for exactly one caller."""
        with self.engine.begin() as conn:
            return conn.execute(update(_enr).where(_e.id == enrollment_id, _e.used_at.is_(None),
                                                   _e.approved_at.is_not(None),
                                                   _e.locked_at.is_(None), _e.expires_at > now)
                                .values(used_at=now)).rowcount == 1

    @translated
    def unclaim(self, enrollment_id: str) -> None:
        """The issuance failed after the claim (its CSR broke the policy): usable again."""
        with self.engine.begin() as conn:
            conn.execute(update(_enr).where(_e.id == enrollment_id, _e.serial.is_(None)).values(used_at=None))

    @translated
    def used(self, enrollment_id: str, serial: str, now: datetime, actor: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(_enr).where(_e.id == enrollment_id).values(serial=serial))
            append(conn, action="enrollment-use", actor=actor, subject=f"enrollment/{enrollment_id}",
                   details={"serial": serial}, now=now)

    @translated
    def cancel(self, enrollment_id: str, now: datetime, actor: str) -> EnrollmentRecord:
        with self.engine.begin() as conn:
            done = conn.execute(update(_enr).where(_e.id == enrollment_id, _e.used_at.is_(None), _e.locked_at.is_(None))
                                .values(locked_at=now))
            if done.rowcount != 1:
                if conn.execute(select(_e.id).where(_e.id == enrollment_id)).first() is None:
                    raise PkiError(ErrorKind.NOT_FOUND, f"no enrollment {enrollment_id}")
                raise PkiError(ErrorKind.CONFLICT, f"enrollment {enrollment_id} is used or locked already")
            append(conn, action="enrollment-cancel", actor=actor, subject=f"enrollment/{enrollment_id}",
                   details={}, now=now)
            return _record(conn.execute(select(_enr).where(_e.id == enrollment_id)).one())
