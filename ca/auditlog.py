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
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.engine import Connection

from ca.db import AuditRow, Counter

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


_log = cast(Table, AuditRow.__table__)
_counters = cast(Table, Counter.__table__)
_next_seq = (update(_counters).where(_counters.c.name == SEQ_COUNTER)
             .values(value=_counters.c.value + 1).returning(_counters.c.value))
_hash_of = select(_log.c.hash).where(_log.c.seq == bindparam("s"))
_insert = insert(_log)


def append(conn: Connection, *, action: str, actor: str, subject: str, details: dict[str, Any],
           now: datetime) -> AuditEntry:
    """Add one entry inside the caller's transaction (``conn`` must be in one)."""
    seq = conn.execute(_next_seq).scalar()
    if seq is None:
        raise RuntimeError("the audit_seq counter is missing (migration 0003)")
    seq = int(seq)
    prev = GENESIS if seq == 1 else (conn.execute(_hash_of, {"s": seq - 1}).scalar() or "missing")
    at = timestamp(now)
    text = canonical(details)
    digest = entry_hash(seq, at, action, actor[:128], subject[:256], text, prev)
    entry = AuditEntry(seq, at, action, actor[:128], subject[:256], text, prev, digest)
    conn.execute(_insert, {"seq": seq, "at": at, "action": action, "actor": entry.actor,
                           "subject": entry.subject, "details": text, "prev_hash": prev, "hash": digest})
    return entry
