"""The audit log: append-only, hash-chained (each entry carries the SHA-256 of the one
before), with signed and time-stamped checkpoints of its head.

Appending happens inside the caller's transaction, so an action and its audit entry are
committed together or not at all. The sequence number comes from a shared counter that
is updated first: that UPDATE takes the database's write lock, so two processes can never
chain onto the same previous entry.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from ca.rawdb import RawDb

GENESIS = "0" * 64          # the prev_hash of entry 1
SEQ_COUNTER = "audit_seq"

ACTIONS = ("issue", "hold", "release", "revoke", "crl", "key", "verify", "checkpoint")


@dataclass(frozen=True)
class AuditEntry:
    """One entry exactly as stored."""

    seq: int
    at: str
    action: str
    actor: str
    subject: str
    details: str
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "action": self.action, "actor": self.actor,
                "subject": self.subject, "details": json.loads(self.details), "prev_hash": self.prev_hash,
                "hash": self.hash}


def canonical(details: dict[str, Any]) -> str:
    """Details as canonical JSON text (sorted keys, no spaces): hashed as stored."""
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(seq: int, at: str, action: str, actor: str, subject: str, details: str, prev_hash: str) -> str:
    """SHA-256 over a JSON array of every field: unambiguous whatever the fields contain."""
    material = json.dumps([seq, at, action, actor, subject, details, prev_hash],
                          separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()


def timestamp(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# One statement takes the next number and reads the previous entry's hash (RETURNING sees
# the updated value), one inserts: two statements, on the verify API's hot path.
NEXT_SQL = ("UPDATE counters SET value = value + 1 WHERE name = 'audit_seq' "
            "RETURNING value, (SELECT hash FROM audit_log WHERE seq = counters.value - 1)")
INSERT_SQL = ("INSERT INTO audit_log (seq, at, action, actor, subject, details, prev_hash, hash) "
              "VALUES (:seq, :at, :action, :actor, :subject, :details, :prev_hash, :hash)")
_next = text(NEXT_SQL)
_insert = text(INSERT_SQL)


def _entry(row: Any, action: str, actor: str, subject: str, details: dict[str, Any], now: datetime) -> AuditEntry:
    """The entry that follows ``row`` (the new seq, the previous entry's hash)."""
    if row is None:
        raise RuntimeError("the audit_seq counter is missing (migration 0003)")
    seq = int(row[0])
    prev = GENESIS if seq == 1 else (row[1] or "missing")
    at = timestamp(now)
    body = canonical(details)
    digest = entry_hash(seq, at, action, actor[:128], subject[:256], body, prev)
    return AuditEntry(seq, at, action, actor[:128], subject[:256], body, prev, digest)


def _params(e: AuditEntry) -> dict[str, Any]:
    return {"seq": e.seq, "at": e.at, "action": e.action, "actor": e.actor, "subject": e.subject,
            "details": e.details, "prev_hash": e.prev_hash, "hash": e.hash}


def append(conn: Connection, *, action: str, actor: str, subject: str, details: dict[str, Any],
           now: datetime) -> AuditEntry:
    """Add one entry inside the caller's transaction (``conn`` must be in one)."""
    entry = _entry(conn.execute(_next).first(), action, actor, subject, details, now)
    conn.execute(_insert, _params(entry))
    return entry


def append_raw(db: RawDb, cur: Any, *, action: str, actor: str, subject: str, details: dict[str, Any],
               now: datetime) -> AuditEntry:
    """The same inside a RawDb transaction (the verify API's evidence record)."""
    cur.execute(db.sql(NEXT_SQL))
    entry = _entry(cur.fetchone(), action, actor, subject, details, now)
    cur.execute(db.sql(INSERT_SQL), _params(entry))
    return entry
