"""The audit log's rows (format: ca.auditlog): appending inside a caller's transaction, on
Core or on the raw driver path, and reading entries and checkpoints (ca.audit)."""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterator

from sqlalchemy import bindparam, exists, insert, select, update
from sqlalchemy.engine import Connection

from ca.auditlog import GENESIS, SEQ_COUNTER, AuditEntry, CheckpointRecord, next_entry
from ca.storage.errors import translated_as
from ca.storage.raw import RawDb
from ca.storage.schema import audit_checkpoints as _cps
from ca.storage.schema import audit_log as _log
from ca.storage.schema import counters as _counters
from ca.storage.schema import utc

if TYPE_CHECKING:
    from ca.storage.store import Store            # which imports this module

# Three statements on the verify API's hot path: take the next number, read the previous
# entry's hash, insert. The read must be a statement of its own: on PostgreSQL (READ
# COMMITTED) a statement sees the snapshot taken when it began, and the UPDATE may have
# begun before the entry it waited for (the counter row's lock is held until its writer
# commits) was committed; a subquery in its RETURNING would read no previous entry.
NEXT = (update(_counters).where(_counters.c.name == SEQ_COUNTER).values(value=_counters.c.value + 1)
        .returning(_counters.c.value))
PREVIOUS = select(_log.c.hash).where(_log.c.seq == bindparam("seq"))
INSERT = insert(_log).values({c: bindparam(c.key) for c in _log.c})

_entry_cols = (_log.c.seq, _log.c.at, _log.c.action, _log.c.actor, _log.c.subject, _log.c.details,
               _log.c.prev_hash, _log.c.hash)


# What every entry written while it is set carries besides its own details: the admin
# request signed by the operator's token that caused it (ca.operators.signed_request).
_signed_request: ContextVar[dict[str, Any] | None] = ContextVar("udun_signed_request", default=None)
SIGNED_REQUEST = "signed_request"


@contextmanager
def signed_request(request: dict[str, Any] | None) -> Iterator[None]:
    """Within it (one admin request), every appended entry carries ``request``."""
    token = _signed_request.set(request)
    try:
        yield
    finally:
        _signed_request.reset(token)


def _seq(row: Any) -> int:
    if row is None:
        raise RuntimeError("the audit_seq counter is missing (migration 0003)")
    return int(row[0])


def _entry(seq: int, prev: Any, action: str, actor: str, subject: str, details: dict[str, Any],
           now: datetime) -> AuditEntry:
    """Entry ``seq``, after the entry whose hash is ``prev`` (None before the first)."""
    signed = _signed_request.get()
    if signed is not None:
        details = {**details, SIGNED_REQUEST: signed}
    return next_entry(seq, prev[0] if prev is not None else None, action, actor, subject, details, now)


def _params(e: AuditEntry) -> dict[str, Any]:
    return {"seq": e.seq, "at": e.at, "action": e.action, "actor": e.actor, "subject": e.subject,
            "details": e.details, "prev_hash": e.prev_hash, "hash": e.hash}


def append(conn: Connection, *, action: str, actor: str, subject: str, details: dict[str, Any],
           now: datetime) -> AuditEntry:
    """Add one entry inside the caller's transaction (``conn`` must be in one)."""
    seq = _seq(conn.execute(NEXT).first())
    entry = _entry(seq, conn.execute(PREVIOUS, {"seq": seq - 1}).first(), action, actor, subject, details, now)
    conn.execute(INSERT, _params(entry))
    return entry


def append_raw(db: RawDb, cur: Any, *, action: str, actor: str, subject: str, details: dict[str, Any],
               now: datetime) -> AuditEntry:
    """The same inside a RawDb transaction (issuance, the verify API's evidence record)."""
    db.execute(cur, NEXT)
    seq = _seq(cur.fetchone())
    db.execute(cur, PREVIOUS, {"seq": seq - 1})
    entry = _entry(seq, cur.fetchone(), action, actor, subject, details, now)
    db.execute(cur, INSERT, _params(entry))
    return entry


def _checkpoint(row: Any) -> CheckpointRecord:
    return CheckpointRecord(row.id, row.seq, row.head_hash, utc(row.at), bytes(row.cms))


class AuditStore:
    """Reads the log and its checkpoints; stores a checkpoint with its own entry."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    @translated_as("audit")
    def entries(self, after: int | None, limit: int) -> list[AuditEntry]:
        """Up to ``limit`` entries by seq, after seq ``after`` (keyset paging)."""
        query = select(*_entry_cols).order_by(_log.c.seq).limit(limit)
        if after is not None:
            query = query.where(_log.c.seq > after)
        with self.engine.connect() as conn:
            return [AuditEntry(*r) for r in conn.execute(query).all()]

    @translated_as("audit")
    def checkpoints(self) -> list[CheckpointRecord]:
        """Every checkpoint, by seq."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_cps).order_by(_cps.c.seq, _cps.c.id)).all()
        return [_checkpoint(r) for r in rows]

    @translated_as("audit")
    def latest_checkpoint(self) -> CheckpointRecord | None:
        """The checkpoint of the highest seq (the newest)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_cps).order_by(_cps.c.seq.desc(), _cps.c.id.desc()).limit(1)).first()
        return _checkpoint(row) if row is not None else None

    @translated_as("audit")
    def head(self, since: int | None) -> tuple[int, str, bool]:
        """(seq, hash) of the newest entry, and whether any entry but a checkpoint's came after ``since``."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_log.c.seq, _log.c.hash).order_by(_log.c.seq.desc()).limit(1)).first()
            moved = since is None or bool(conn.execute(select(exists().where(
                _log.c.seq > since, _log.c.action != "checkpoint"))).scalar())
        return (int(row[0]), str(row[1]), moved) if row is not None else (0, GENESIS, moved)

    @translated_as("audit")
    def add_checkpoint(self, seq: int, head: str, at: datetime, token: bytes, *, actor: str,
                       details: dict[str, Any], now: datetime) -> int:
        """Store a checkpoint and its "checkpoint" entry in one transaction; the new id."""
        with self.engine.begin() as conn:
            # append() first: its counter UPDATE takes the write lock before anything else is written.
            append(conn, action="checkpoint", actor=actor, subject=f"seq {seq}", details=details, now=now)
            new_id = conn.execute(insert(_cps).values(seq=seq, head_hash=head, at=at, cms=token)).inserted_primary_key
        assert new_id is not None
        return int(new_id[0])
