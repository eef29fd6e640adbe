"""The record of the CA's own delegated keys and certificates (migration 0007).

Written by ca.renewal where the CA key is; read by every process: the bank-facing server
loads the current key from it, and relying-party code accepts a delegated certificate of
our CA only when it is here.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update

from ca.storage.errors import translated
from ca.storage.schema import delegated_keys, opt_utc, utc
from ca.storage.store import Store


@dataclass(frozen=True)
class DelegatedRecord:
    cert_sha256: str
    name: str
    token_label: str
    key_id: bytes
    cert_der: bytes
    not_after: datetime
    destroyed_at: datetime | None


def _record(row: object) -> DelegatedRecord:
    r = row._mapping  # type: ignore[attr-defined]
    return DelegatedRecord(r["cert_sha256"], r["name"], r["token_label"], bytes.fromhex(r["key_id"]),
                           bytes(r["cert_der"]), utc(r["not_after"]), opt_utc(r["destroyed_at"]))


class DelegatedStore:
    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    @translated
    def add(self, name: str, token_label: str, key_id: bytes, cert_der: bytes, not_after: datetime,
            now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(delegated_keys).values(
                cert_sha256=hashlib.sha256(cert_der).hexdigest(), name=name, token_label=token_label,
                key_id=key_id.hex(), cert_der=cert_der, not_after=not_after, created_at=now))

    @translated
    def all(self, name: str | None = None) -> list[DelegatedRecord]:
        q = select(delegated_keys)
        if name is not None:
            q = q.where(delegated_keys.c.name == name)
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(q.order_by(delegated_keys.c.created_at))]

    @translated
    def recorded(self) -> frozenset[str]:
        """The SHA-256 of every delegated certificate the CA made for its own keys."""
        with self.engine.connect() as conn:
            return frozenset(conn.execute(select(delegated_keys.c.cert_sha256)).scalars())

    @translated
    def mark_destroyed(self, cert_sha256: str, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(delegated_keys).where(delegated_keys.c.cert_sha256 == cert_sha256)
                         .values(destroyed_at=now))
