"""Monotonic counters shared by every process: CRL numbers per authority, the status version
(OCSP caches and the verify API drop what they cached when it moves), audit_seq (ca.storage.audit)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ca.storage.schema import counters

READ = select(counters.c.value).where(counters.c.name == bindparam("name"))


def _bump(dialect: Any) -> Any:
    """INSERT ... ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value: one
    statement on both engines, so that two transactions creating a counter at once do not
    both insert it (a unique violation on PostgreSQL, where nothing else serialises them)."""
    stmt = dialect.insert(counters).values(name=bindparam("name"), value=1)
    return stmt.on_conflict_do_update(index_elements=[counters.c.name],
                                      set_={"value": counters.c.value + 1}).returning(counters.c.value)


_BUMP = {"sqlite": _bump(sqlite), "postgresql": _bump(postgresql)}


def bump(conn: Connection, name: str) -> int:
    """Increment a counter inside the caller's transaction; returns the new value.

    Callers bump first: the write takes SQLite's write lock (pysqlite begins the transaction
    at the first write) and the counter row's lock on PostgreSQL, both held to the end of the
    transaction, so what the transaction reads next is current (on PostgreSQL each later
    statement of a READ COMMITTED transaction takes a new snapshot, after the lock).
    """
    return int(conn.execute(_BUMP[conn.dialect.name], {"name": name}).scalar_one())
