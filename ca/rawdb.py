"""Plain DBAPI access for the few statements on the busiest request paths.

SQLAlchemy Core costs ~40-120 µs a statement here (pool checkout, compiled-cache lookup,
result objects) against ~10 µs for the driver itself: on the verify API's path (a status
read and the evidence transaction) that is a tenth of a request. Each thread keeps one
driver connection of its own, taken from the engine after fork. SQL is written with
``:name`` parameters and converted for drivers that use ``%(name)s`` (psycopg).
Only ca.store, ca.auditlog and ca.evidence_store use this: it is part of the store.
"""
from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

from sqlalchemy.engine import Engine

from pkicore.errors import ErrorKind, PkiError

_NAMED = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")


class RawDb:
    """Per-thread driver connections over one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dbapi: Any = engine.dialect.dbapi
        self._sqlite = engine.dialect.name == "sqlite"
        self._local = threading.local()
        self._sql: dict[str, str] = {}

    def sql(self, text: str) -> str:
        """``text`` in the driver's parameter style (computed once per statement)."""
        out = self._sql.get(text)
        if out is None:
            out = self._sql[text] = text if self._sqlite else _NAMED.sub(r"%(\1)s", text)
        return out

    def when(self, moment: datetime) -> Any:
        """A datetime parameter as SQLAlchemy's DateTime column would store it (SQLite
        keeps text: naive UTC with microseconds), so both paths read it back alike."""
        if self._sqlite:
            return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        return moment

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.engine.raw_connection()
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.invalidate()
            except Exception:  # noqa: BLE001  it is gone either way
                pass

    def one(self, text: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row of a read, outside any transaction."""
        with self.transaction() as cur:
            cur.execute(self.sql(text), params)
            row = cur.fetchone()
        return tuple(row) if row is not None else None

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor in one transaction: committed on success, rolled back on any error.

        pysqlite begins the transaction at the first write, so the first write also takes
        SQLite's write lock (callers order their statements for that). Driver errors
        other than integrity violations become PkiError(UNAVAILABLE).
        """
        conn = self._connection()
        cur = conn.cursor()
        try:
            yield cur
            conn.commit()
        except self.dbapi.IntegrityError:
            conn.rollback()
            raise
        except self.dbapi.Error as e:
            self._drop()
            raise PkiError(ErrorKind.UNAVAILABLE, "the database is not available") from e
        except BaseException:
            conn.rollback()
            raise
        finally:
            try:
                cur.close()
            except self.dbapi.Error:
                pass
