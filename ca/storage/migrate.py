"""The migration runner: Alembic, over the revisions in ca/migrations (0001 .. head)."""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from ca.storage.errors import cannot_open
from config.locks import file_lock

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic(conn: Connection, verb: str, revision: str) -> None:
    """``alembic upgrade|downgrade REVISION`` on ``conn`` (in the caller's transaction)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    getattr(command, verb)(cfg, revision)


def migrate(engine: Engine, lock: Path | None = None) -> None:
    """Bring the schema to the newest Alembic revision.

    Several processes may start at once on a fresh SQLite file; a file lock serialises
    them (with PostgreSQL, run migrations from one place: `udun ca init` or a deploy step).
    """
    try:
        with file_lock(lock) if lock else nullcontext():
            with engine.begin() as conn:
                alembic(conn, "upgrade", "head")
    except OperationalError as e:
        raise cannot_open(e) from e
