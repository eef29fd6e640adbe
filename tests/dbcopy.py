"""Copies of a database to tamper with, and raw SQL on them, on either engine of the run.

Tests that forge or delete rows (the audit log's) must never touch the session database:
they copy it (SQLite's online backup; on PostgreSQL ``pg_dump`` while the session's
connections stay open, or ``CREATE DATABASE ... TEMPLATE`` from a copy nobody is
connected to) and edit the copy with plain SQL, written with ``?`` placeholders for both.
"""
from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any, Sequence

from sqlalchemy.engine import make_url

Statement = tuple[str, Sequence[Any]]


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def _pg(url: str) -> Any:
    import psycopg

    u = make_url(url)
    return psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database)


def copy_database(src_url: str, dst: Path) -> str:
    """A copy of ``src_url``'s database named after the path ``dst``; its URL."""
    if _is_sqlite(src_url):
        with sqlite3.connect(_path(src_url)) as a, sqlite3.connect(dst) as b:
            a.backup(b)
        a.close()
        b.close()
        return f"sqlite:///{dst}"
    import psycopg
    import pgserver

    src = make_url(src_url)
    name = pgserver.database_name(dst)
    admin = src.set(database="postgres").render_as_string(hide_password=False)
    with pgserver._admin(admin) as conn:
        try:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {src.database}")
            return src.set(database=name).render_as_string(hide_password=False)
        except psycopg.errors.ObjectInUse:
            conn.execute(f"CREATE DATABASE {name}")            # the source is in use: dump and restore
    bindir = pgserver._bindir()
    conn_args = ["-h", str(src.host), "-p", str(src.port), "-U", str(src.username)]
    dump = subprocess.run([str(bindir / "pg_dump"), *conn_args, "--no-owner", str(src.database)],
                          check=True, capture_output=True, timeout=120).stdout
    subprocess.run([str(bindir / "psql"), *conn_args, "-q", "-v", "ON_ERROR_STOP=1", "-d", name], input=dump,
                   check=True, capture_output=True, timeout=120)
    return src.set(database=name).render_as_string(hide_password=False)


def _sql(url: str, statement: str) -> str:
    return statement if _is_sqlite(url) else statement.replace("?", "%s")


def execute(url: str, *statements: Statement) -> None:
    """Run ``statements`` in one transaction."""
    if _is_sqlite(url):
        with sqlite3.connect(_path(url)) as c:
            for sql, params in statements:
                c.execute(sql, tuple(params))
        c.close()
        return
    with _pg(url) as conn:
        for sql, params in statements:
            conn.execute(_sql(url, sql), tuple(params))


def fetchall(url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    if _is_sqlite(url):
        with sqlite3.connect(_path(url)) as c:
            rows = c.execute(sql, tuple(params)).fetchall()
        c.close()
        return [tuple(r) for r in rows]
    with _pg(url) as conn:
        return [tuple(r) for r in conn.execute(_sql(url, sql), tuple(params)).fetchall()]


def fetchone(url: str, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
    rows = fetchall(url, sql, params)
    assert rows, f"no row for {sql}"
    return rows[0]
