"""Monotonic counters shared by every process: CRL numbers per authority, the status version
(OCSP caches and the verify API drop what they cached when it moves), audit_seq (ca.storage.audit)."""
from __future__ import annotations

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection

from ca.storage.schema import counters

READ = select(counters.c.value).where(counters.c.name == bindparam("name"))


def bump(conn: Connection, name: str) -> int:
    """Increment a counter inside the caller's transaction; returns the new value.

    The UPDATE comes first so that it takes SQLite's write lock (pysqlite begins the
    transaction at the first write): what the transaction reads next is then current.
    """
    value = conn.execute(update(counters).where(counters.c.name == name).values(value=counters.c.value + 1)
                         .returning(counters.c.value)).scalar()
    if value is None:
        conn.execute(insert(counters).values(name=name, value=1))
        value = 1
    return int(value)
