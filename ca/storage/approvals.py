"""Storage for dual control (migration 0012): policies, requests, votes.

Every step is one transaction with its audit entry, and each state change is a
conditional UPDATE naming the state it leaves, taken before anything else is written in
the transaction (its row lock, or SQLite's write lock, orders concurrent callers): two
approvals arriving at once are counted one after the other, and exactly one caller moves
a request to ``approved`` and then claims its execution.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from ca.storage.audit import append
from ca.storage.errors import db_errors, translated
from ca.storage.schema import approval_policies as _pol
from ca.storage.schema import approval_votes as _votes
from ca.storage.schema import approvals as _req
from ca.storage.schema import opt_utc, utc
from ca.storage.store import Store
from pkicore.errors import ErrorKind, PkiError

OPEN = "pending"


@dataclass(frozen=True)
class PolicyRecord:
    action: str
    approvals: int
    roles: tuple[str, ...]
    expires_hours: int
    threshold: int | None
    profiles: tuple[str, ...]
    updated_at: datetime | None = None
    updated_by: str | None = None


@dataclass(frozen=True)
class VoteRecord:
    operator: str
    vote: str
    comment: str | None
    at: datetime


@dataclass(frozen=True)
class ApprovalRecord:
    id: str
    action: str
    params: dict[str, Any]
    params_sha256: str
    requester: str
    required: int
    roles: tuple[str, ...]
    approved: int
    state: str
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    result: dict[str, Any] | None
    votes: tuple[VoteRecord, ...] = ()


_r = _req.c
_v = _votes.c
_p = _pol.c


def _policy(row: Any) -> PolicyRecord:
    return PolicyRecord(row.action, row.approvals, tuple(row.roles.split()), row.expires_hours, row.threshold,
                        tuple((row.profiles or "").split()), utc(row.updated_at), row.updated_by)


def _approval(row: Any, votes: list[Any]) -> ApprovalRecord:
    return ApprovalRecord(row.id, row.action, json.loads(row.params), row.params_sha256, row.requester, row.required,
                          tuple(row.roles.split()), row.approved, row.state, utc(row.created_at), utc(row.expires_at),
                          opt_utc(row.decided_at), json.loads(row.result) if row.result else None,
                          tuple(VoteRecord(v.operator, v.vote, v.comment, utc(v.at)) for v in votes))


def _read(conn: Connection, approval_id: str) -> ApprovalRecord:
    row = conn.execute(select(_req).where(_r.id == approval_id)).first()
    if row is None:
        raise PkiError(ErrorKind.NOT_FOUND, f"no approval request {approval_id}")
    votes = conn.execute(select(_votes).where(_v.approval_id == approval_id).order_by(_v.at, _v.operator)).all()
    return _approval(row, list(votes))


def _state_now(conn: Connection, approval_id: str) -> str:
    return str(conn.execute(select(_r.state).where(_r.id == approval_id)).scalar() or "unknown")


class ApprovalStore:
    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    # --- policies -------------------------------------------------------------------

    @translated
    def policies(self) -> dict[str, PolicyRecord]:
        with self.engine.connect() as conn:
            return {row.action: _policy(row) for row in conn.execute(select(_pol))}

    def set_policy(self, policy: PolicyRecord, now: datetime, actor: str) -> None:
        values = {"approvals": policy.approvals, "roles": " ".join(policy.roles), "expires_hours": policy.expires_hours,
                  "threshold": policy.threshold, "profiles": " ".join(policy.profiles) or None,
                  "updated_at": now, "updated_by": actor}
        with db_errors(conflict="the policy was changed at the same moment: try again"), self.engine.begin() as conn:
            done = conn.execute(update(_pol).where(_p.action == policy.action).values(**values))
            if done.rowcount == 0:
                conn.execute(insert(_pol).values(action=policy.action, **values))
            append(conn, action="approval-policy", actor=actor, subject=f"approval-policy/{policy.action}",
                   details={k: v for k, v in values.items() if k not in ("updated_at", "updated_by")}, now=now)

    # --- requests -------------------------------------------------------------------

    def add(self, row: dict[str, Any], now: datetime) -> ApprovalRecord:
        """``row``: id, action, params (canonical JSON text), params_sha256, requester,
        required, roles, expires_at."""
        with db_errors(conflict="the approval id was taken; try again"), self.engine.begin() as conn:
            conn.execute(insert(_req).values(state=OPEN, created_at=now, approved=0, **row))
            append(conn, action="approval-request", actor=row["requester"], subject=f"approval/{row['id']}",
                   details={"action": row["action"], "params_sha256": row["params_sha256"],
                            "required": row["required"], "roles": row["roles"]}, now=now)
            return _read(conn, row["id"])

    @translated
    def get(self, approval_id: str) -> ApprovalRecord:
        with self.engine.connect() as conn:
            return _read(conn, approval_id)

    @translated
    def find(self, state: str | None, limit: int) -> list[ApprovalRecord]:
        query = select(_req).order_by(_r.created_at.desc(), _r.id).limit(limit)
        if state:
            query = query.where(_r.state == state)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            return [_read(conn, row.id) for row in rows]

    @translated
    def expire(self, now: datetime) -> list[str]:
        """Mark every pending request past its time expired (each with its audit entry)."""
        with self.engine.begin() as conn:
            due = [r.id for r in conn.execute(select(_r.id).where(_r.state == OPEN, _r.expires_at <= now))]
            for approval_id in due:
                done = conn.execute(update(_req).where(_r.id == approval_id, _r.state == OPEN)
                                    .values(state="expired", decided_at=now))
                if done.rowcount == 1:
                    append(conn, action="approval-expire", actor="udun", subject=f"approval/{approval_id}",
                           details={}, now=now)
            return due

    @translated
    def vote(self, approval_id: str, operator: str, vote: str, comment: str | None, now: datetime,
             details: dict[str, Any]) -> tuple[ApprovalRecord, bool]:
        """Record one vote; (the request after it, whether this vote approved it)."""
        with self.engine.begin() as conn:
            if vote == "approve":
                done = conn.execute(update(_req).where(_r.id == approval_id, _r.state == OPEN, _r.expires_at > now)
                                    .values(approved=_r.approved + 1))
            else:
                done = conn.execute(update(_req).where(_r.id == approval_id, _r.state == OPEN, _r.expires_at > now)
                                    .values(state="rejected", decided_at=now))
            if done.rowcount != 1:
                state = _state_now(conn, approval_id)
                if state == "unknown":
                    raise PkiError(ErrorKind.NOT_FOUND, f"no approval request {approval_id}")
                raise PkiError(ErrorKind.CONFLICT, f"approval {approval_id} is {state if state != OPEN else 'expired'}"
                                                   ": it takes no more votes")
            with db_errors(conflict=f"{operator} voted on approval {approval_id} already"):
                conn.execute(insert(_votes).values(approval_id=approval_id, operator=operator, vote=vote,
                                                   comment=comment, at=now))
            approved_now = False
            if vote == "approve":
                row = conn.execute(select(_r.approved, _r.required).where(_r.id == approval_id)).one()
                if row.approved >= row.required:
                    approved_now = conn.execute(update(_req).where(_r.id == approval_id, _r.state == OPEN)
                                                .values(state="approved", decided_at=now)).rowcount == 1
            append(conn, action=f"approval-{vote}", actor=operator, subject=f"approval/{approval_id}",
                   details={**details, "comment": comment, "approved": approved_now}, now=now)
            return _read(conn, approval_id), approved_now

    @translated
    def require(self, approval_id: str, required: int) -> None:
        """Raise a pending request's approvals needed (its policy was tightened since)."""
        with self.engine.begin() as conn:
            conn.execute(update(_req).where(_r.id == approval_id, _r.state == OPEN, _r.required < required)
                         .values(required=required))

    @translated
    def claim(self, approval_id: str, from_state: str, now: datetime) -> bool:
        """Take an approved request for execution: True for exactly one caller."""
        with self.engine.begin() as conn:
            return conn.execute(update(_req).where(_r.id == approval_id, _r.state == from_state)
                                .values(state="executing")).rowcount == 1

    @translated
    def finish(self, approval_id: str, ok: bool, result: dict[str, Any], actor: str, now: datetime) -> ApprovalRecord:
        with self.engine.begin() as conn:
            conn.execute(update(_req).where(_r.id == approval_id, _r.state == "executing")
                         .values(state="executed" if ok else "failed", result=json.dumps(result, ensure_ascii=False)))
            append(conn, action="approval-execute" if ok else "approval-fail", actor=actor,
                   subject=f"approval/{approval_id}", details={"result": result}, now=now)
            return _read(conn, approval_id)
