"""The audit log's format: append-only, hash-chained (each entry carries the SHA-256 of the
one before), with signed and time-stamped checkpoints of its head (ca.audit).

Appending (ca.storage.audit) happens inside the caller's transaction, so an action and its
audit entry are committed together or not at all. The sequence number comes from a shared
counter that is updated first: that UPDATE takes the database's write lock, so two
processes can never chain onto the same previous entry.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

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


@dataclass(frozen=True)
class CheckpointRecord:
    """One stored checkpoint; ``token`` is the RFC 3161 TimeStampToken (DER)."""

    id: int
    seq: int
    head_hash: str
    at: datetime
    token: bytes


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


def next_entry(seq: int, prev: str | None, action: str, actor: str, subject: str, details: dict[str, Any],
               now: datetime) -> AuditEntry:
    """Entry ``seq``, chained onto the hash ``prev`` of entry ``seq - 1``."""
    prev = GENESIS if seq == 1 else (prev or "missing")
    at = timestamp(now)
    body = canonical(details)
    digest = entry_hash(seq, at, action, actor[:128], subject[:256], body, prev)
    return AuditEntry(seq, at, action, actor[:128], subject[:256], body, prev, digest)
