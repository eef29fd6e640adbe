"""Plain DBAPI execution of Core statements, for the few on the busiest request paths.

SQLAlchemy Core costs ~40-120 µs a statement here (pool checkout, compiled-cache lookup,
result objects) against ~10 µs for the driver itself: on issuance (the intent and the
issued certificate, make bench: issuance) that is as much as the token's signature, and on
the verify API's path (the status counter read and the evidence transaction) a tenth of a
request. So those statements go straight to the driver; everything else uses Core.

The statements are still built from ca.storage.schema's Table objects: each one is
compiled once per engine into the driver's SQL text (named parameters: ``:name`` for
SQLite, ``%(name)s`` for psycopg) and executed on a cursor of a driver connection this
thread keeps for itself, taken from the engine after fork. Values the statement carries
itself (``state = 'pending'``) become parameters with their defaults. Driver errors go
through ca.storage.errors like Core's. Only the stores of ca.storage use this.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator, cast

from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from ca.storage.errors import pki_error


@dataclass(frozen=True)
class RawSql:
    """A Core statement as the driver takes it: SQL text, and the values it carries itself."""

    sql: str
    defaults: dict[str, Any]


def compile_raw(stmt: ClauseElement, dialect: Dialect) -> RawSql:
    """``stmt`` compiled for a named-parameter ``dialect``. Parameters without a value (plain
    ``bindparam("name")``) must be given at execution; expanding ones (``in_``) are refused:
    their SQL text depends on the values."""
    compiled = cast(SQLCompiler, stmt.compile(dialect=dialect))
    if dialect.positional or compiled.post_compile_params:
        raise ValueError("a raw statement needs named, non-expanding parameters")
    required = {name for name, bind in compiled.binds.items() if bind.required}
    return RawSql(compiled.string, {k: v for k, v in compiled.params.items() if k not in required})


def _named_dialect(engine: Engine) -> Dialect:
    """The engine's dialect if its driver takes named parameters, else one like it that
    does (pysqlite's default is qmark; sqlite3 takes ``:name`` as well)."""
    dialect = engine.dialect
    if not dialect.positional:
        return dialect
    return type(dialect)(paramstyle="named", dbapi=dialect.dbapi)  # type: ignore[call-arg]


class RawDb:
    """Per-thread driver connections over one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dbapi: Any = engine.dialect.dbapi
        self._sqlite = engine.dialect.name == "sqlite"
        self._local = threading.local()
        self._dialect = _named_dialect(engine)
        self._compiled: dict[ClauseElement, RawSql] = {}

    def compiled(self, stmt: ClauseElement) -> RawSql:
        """``stmt`` for this engine's driver (compiled at first use; statements are module constants)."""
        out = self._compiled.get(stmt)
        if out is None:
            out = self._compiled[stmt] = compile_raw(stmt, self._dialect)
        return out

    def execute(self, cur: Any, stmt: ClauseElement, params: dict[str, Any] | None = None) -> None:
        """Run ``stmt`` on a cursor of ``transaction()``."""
        raw = self._compiled.get(stmt) or self.compiled(stmt)
        fixed = raw.defaults
        cur.execute(raw.sql, ({**fixed, **params} if fixed else params) if params else fixed)

    def when(self, moment: datetime) -> Any:
        """A datetime parameter as SQLAlchemy's DateTime column would store it (SQLite
        keeps text: naive UTC with microseconds), so both paths read it back alike."""
        if self._sqlite:
            return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        return moment

    def moment(self, value: Any) -> datetime | None:
        """A DateTime column's value as read by the driver, as an aware UTC datetime (SQLite
        hands back ``when``'s text; psycopg an aware datetime)."""
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value + "+00:00")
        return cast(datetime, value).astimezone(timezone.utc)

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self._local.conn = self.engine.raw_connection()
            except (DBAPIError, self.dbapi.Error) as e:    # the pool hands on the driver's own errors
                raise pki_error(e) from e
        return conn

    def close(self) -> None:
        """Let this thread's driver connection go (the next statement opens another)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.invalidate()
            except Exception:  # noqa: BLE001  it is gone either way
                pass

    def one(self, stmt: ClauseElement, params: dict[str, Any] | None = None) -> tuple[Any, ...] | None:
        """The first row of a read, outside any transaction.

        On PostgreSQL in autocommit: one round trip instead of three (psycopg sends BEGIN
        and COMMIT as statements of their own), on every verify and OCSP request. A single
        statement sees one snapshot either way.
        """
        if self._sqlite:
            with self.transaction() as cur:
                self.execute(cur, stmt, params)
                row = cur.fetchone()
            return tuple(row) if row is not None else None
        driver = self._connection().driver_connection
        try:
            driver.autocommit = True
            with driver.cursor() as cur:
                self.execute(cur, stmt, params)
                row = cur.fetchone()
        except self.dbapi.Error as e:
            self.close()
            raise pki_error(e) from e
        finally:
            if not driver.closed:
                driver.autocommit = False
        return tuple(row) if row is not None else None

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor in one transaction: committed on success, rolled back on any error.

        pysqlite begins the transaction at the first write, so the first write also takes
        SQLite's write lock (callers order their statements for that). Integrity violations
        are re-raised as the driver's IntegrityError (``self.dbapi.IntegrityError``); other
        driver errors become PkiError (ca.storage.errors.pki_error).
        """
        conn = self._connection()
        cur = None
        try:
            cur = conn.cursor()
            yield cur
            conn.commit()
        except self.dbapi.IntegrityError:
            conn.rollback()
            raise
        except self.dbapi.Error as e:
            self.close()
            raise pki_error(e) from e
        except BaseException:
            conn.rollback()
            raise
        finally:
            if cur is not None:
                try:
                    cur.close()
                except self.dbapi.Error:
                    pass
