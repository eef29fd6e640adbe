"""The migration runner: Alembic, over the revisions in ca/migrations (0001 .. head).

Besides ``migrate`` (what start-up calls), ``schema_state`` and ``upgrade`` back
`udun db current` / `udun db upgrade` and a readiness check: they never run a revision
file to *read* the state, and they refuse a database at a revision this udun does not know
(a newer udun migrated it) instead of letting Alembic fail half-way.
"""
from __future__ import annotations

import functools
from contextlib import nullcontext
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError, StatementError

from ca.storage.errors import cannot_open, pki_error
from config.locks import file_lock
from pkicore.errors import ErrorKind, PkiError

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def alembic(conn: Connection, verb: str, revision: str) -> None:
    """``alembic upgrade|downgrade REVISION`` on ``conn`` (in the caller's transaction)."""
    cfg = _config()
    cfg.attributes["connection"] = conn
    getattr(command, verb)(cfg, revision)


@functools.cache
def _known() -> tuple[str, ...]:
    # Read once per process: the revision files do not change under a running udun, and a
    # readiness probe calls schema_state often.
    script = ScriptDirectory.from_config(_config())
    return tuple(s.revision for s in reversed(list(script.walk_revisions("base", "heads"))))


def revisions() -> list[str]:
    """Every revision this udun knows, oldest first (the chain is linear: one head)."""
    return list(_known())


def head_revision() -> str:
    """The newest revision this udun knows."""
    return _known()[-1]


def current_revision(conn: Connection) -> str | None:
    """The database's revision (alembic_version), None for a database Alembic never touched."""
    return MigrationContext.configure(conn).get_current_revision()


def schema_state(engine: Engine) -> tuple[str | None, str]:
    """(the database's revision or None, this udun's head): at head when they are equal.

    For readiness checks (`/readyz`) and `udun db current`; reads only alembic_version.
    Raises PkiError (BAD_INPUT: cannot open; UNAVAILABLE: other driver failures).
    """
    head = head_revision()
    try:
        with engine.connect() as conn:
            return current_revision(conn), head
    except OperationalError as e:        # cannot connect (host, port, credentials, file)
        raise cannot_open(e) from e
    except DBAPIError as e:
        raise pki_error(e) from e


def unknown_revision(current: str, head: str) -> PkiError:
    return PkiError(ErrorKind.CONFLICT,
                    f"the database is at revision {current}, which this udun does not know (its newest is {head}): "
                    "it was migrated by a newer udun; run that version, never downgrade the schema from here")


def _target(target: str, current: str | None, known: list[str]) -> str:
    """The revision ``target`` names ('head' or a known id), checked against ``current``."""
    wanted = known[-1] if target == "head" else target
    if wanted not in known:
        raise PkiError(ErrorKind.BAD_INPUT, f"unknown revision {target!r}: this udun knows {', '.join(known)}")
    if current is not None and known.index(wanted) < known.index(current):
        raise PkiError(ErrorKind.CONFLICT, f"the database is at revision {current}, past {wanted}: "
                                           "`udun db upgrade` never downgrades")
    return wanted


def _checked(conn: Connection, target: str, known: list[str]) -> tuple[str | None, str]:
    """(the database's revision, the one to go to), or PkiError if the database's is unknown."""
    current = current_revision(conn)
    if current is not None and current not in known:
        raise unknown_revision(current, known[-1])
    return current, _target(target, current, known)


def _begin_ddl(conn: Connection) -> None:
    """Open the transaction at the database itself, so the revisions' DDL is in it too.

    Python's sqlite3 opens a transaction only before INSERT/UPDATE/DELETE: a CREATE or
    ALTER that comes first would commit at once, and a revision failing later would leave
    its tables behind with alembic_version unchanged (the next upgrade then fails on them).
    SQLite's DDL is transactional once BEGIN is issued by hand; IMMEDIATE takes the write
    lock now, so two processes upgrading one file wait for each other. PostgreSQL's
    transactions hold DDL already.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _run(conn: Connection, current: str | None, wanted: str) -> None:
    """The revisions from ``current`` to ``wanted``, in the caller's transaction."""
    try:
        alembic(conn, "upgrade", wanted)
    except StatementError as e:
        # A revision failed on this data (a bug to report), in the driver (DBAPIError, an
        # OperationalError too: not a connection problem here) or before it (a value its
        # column type refuses). The caller's transaction rolls back: the database stays
        # at its revision, DDL included (_begin_ddl).
        reason = type(e.orig).__name__ if e.orig else type(e).__name__
        raise PkiError(ErrorKind.INTERNAL, f"the upgrade from revision {current or 'none'} to {wanted} failed "
                                           f"({reason}); the database is left at {current or 'no revision'}") from e


def upgrade(engine: Engine, target: str = "head", lock: Path | None = None) -> tuple[str | None, str]:
    """Upgrade to ``target`` ('head' or a revision id) in one transaction; (from, to).

    A database already at the target is left alone (from == to). One at a revision this
    udun does not know is refused (CONFLICT) before anything runs.
    """
    known = revisions()
    try:
        with file_lock(lock) if lock else nullcontext():
            with engine.begin() as conn:
                current, wanted = _checked(conn, target, known)
                if current == wanted:        # the usual start-up: a read, no write lock taken
                    return current, wanted
                _begin_ddl(conn)
                current, wanted = _checked(conn, target, known)   # again, now that no one else can
                if current != wanted:
                    _run(conn, current, wanted)
                return current, wanted
    except OperationalError as e:        # connecting, or the lock: not the revisions (see _run)
        raise cannot_open(e) from e


def migrate(engine: Engine, lock: Path | None = None) -> None:
    """Bring the schema to the newest Alembic revision.

    Several processes may start at once on a fresh SQLite file; a file lock serialises
    them (with PostgreSQL, run migrations from one place: `udun ca init` or a deploy step).
    """
    upgrade(engine, "head", lock)
