"""The engine: UDUN_DATABASE_URL (SQLite under UDUN_HOME by default), its pragmas and file modes."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

from config.settings import Settings
from pkicore.errors import ErrorKind, PkiError


def sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """Set on every SQLite connection (the engine's "connect" event)."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")     # readers never block the writer
    cur.execute("PRAGMA synchronous=NORMAL")   # durable at checkpoints; safe with WAL
    cur.execute("PRAGMA busy_timeout=10000")   # several processes share one file
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA wal_autocheckpoint=10000")  # fewer, larger checkpoints (issuance rate)
    cur.close()


def _private_home(home: Path) -> None:
    """UDUN_HOME is udun's alone (0700): it holds the database, token files and PIN files."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        if home.stat().st_mode & 0o077:
            home.chmod(0o700)
    except OSError:
        pass                                  # a home we do not own: left as it is


PG_CONNECT_SECONDS = 10


def make_engine(settings: Settings) -> Engine:
    """An engine for UDUN_DATABASE_URL (SQLite under UDUN_HOME by default)."""
    url = settings.database_url
    _private_home(settings.home)              # the token files and PIN files are there on any engine
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            # Payments (names, accounts) and the audit log: readable by udun's user only.
            # SQLite gives its -wal and -shm files the main file's mode.
            try:
                os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
                os.chmod(path, 0o600)
            except OSError:
                pass                          # not ours to create here: the engine will say why
    kwargs: dict[str, Any] = {}
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
            # libpq waits for ever by default: a server that accepts and never answers (a
            # half-dead host, a firewall dropping replies) would hang every request. The
            # URL's own ?connect_timeout= wins.
            kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_SECONDS}
        engine = create_engine(parsed, future=True, **kwargs)
    except Exception as e:
        raise PkiError(ErrorKind.BAD_INPUT, f"UDUN_DATABASE_URL is not usable: {type(e).__name__}") from e
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", sqlite_pragmas)
    return engine
