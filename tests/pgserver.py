"""A throwaway PostgreSQL server for the test run (``pytest --db postgresql``).

Debian's ``postgresql`` package (scripts/bootstrap.sh installs it) gives the binaries; the
cluster lives in a temporary directory, listens on a free loopback port, runs with fsync
off (nothing in it outlives the run) and is removed at the end. ``initdb`` and
``postgres`` refuse to run as root, so as root they run as the ``postgres`` user
(``setpriv``), which then owns the directory.

Each UDUN_HOME of the run gets a database of its own (``database_for``): the same
isolation a home's SQLite file gives, on one server.

bench/pg.py starts its server through this class with other settings (fsync on: the
figures must not flatter PostgreSQL).
"""
from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from collections.abc import Mapping
from typing import Any

USER = "udun"                       # the cluster's superuser, trusted on loopback


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL's server binaries are missing: apt-get install postgresql "
                           "(scripts/bootstrap.sh does)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The tests' server: nothing in it outlives the run, so nothing is flushed.
TEST_SETTINGS: Mapping[str, str] = {
    "listen_addresses": "127.0.0.1", "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
    "max_connections": "400", "shared_buffers": "64MB",
}


class ThrowawayPostgres:
    """``start()`` → the server's admin URL; ``stop()`` removes everything."""

    def __init__(self, settings: Mapping[str, str] = TEST_SETTINGS, prefix: str = "udun-pg-") -> None:
        self.settings = dict(settings)
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: list[str] = []
        if os.geteuid() == 0:
            pg = pwd.getpwnam("postgres")
            os.chown(self.dir, pg.pw_uid, pg.pw_gid)
            self._as = ["setpriv", f"--reuid={pg.pw_uid}", f"--regid={pg.pw_gid}", "--init-groups"]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def pid(self) -> int | None:
        """The postmaster: its children are the backends, the WAL writer, the checkpointer."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self) -> str:
        bindir = _bindir()
        data = self.dir / "data"
        no_sync = ["--no-sync"] if self.settings.get("fsync") == "off" else []
        subprocess.run([*self._as, str(bindir / "initdb"), "-D", str(data), "-U", USER, "-A", "trust",
                        "-E", "UTF8", "--locale=C", *no_sync],
                       check=True, capture_output=True, timeout=180)
        options = [x for k, v in self.settings.items() for x in ("-c", f"{k}={v}")]
        for _ in range(5):                    # a port taken between the probe and the bind: next one
            self.port = _free_port()
            with open(self.dir / "server.log", "ab") as log:
                self.proc = subprocess.Popen(
                    [*self._as, str(bindir / "postgres"), "-D", str(data), "-p", str(self.port),
                     "-k", str(self.dir), *options],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            if self._wait_ready():
                return self.url()
            self._kill()
        raise RuntimeError(f"PostgreSQL did not start; see {self.dir / 'server.log'}:\n"
                           + (self.dir / "server.log").read_text(errors="replace")[-2000:])

    def _wait_ready(self) -> bool:
        import psycopg

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                psycopg.connect(host="127.0.0.1", port=self.port, user=USER, dbname="postgres",
                                connect_timeout=2).close()
                return True
            except psycopg.OperationalError:
                time.sleep(0.1)
        return False

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)          # "fast" shutdown: ends every session
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def database(self, name: str) -> str:
        """CREATE DATABASE ``name`` (unless it is there); its SQLAlchemy URL."""
        create_database(self.url(), name)
        return self.url(name)


def database_name(home: str | Path) -> str:
    """The database of one UDUN_HOME (a name PostgreSQL takes without quoting)."""
    return "udun_" + hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:20]


def database_url(admin_url: str, home: str | Path) -> str:
    """The URL of ``home``'s database on the server of ``admin_url``, created if it is new."""
    from sqlalchemy.engine import make_url

    name = database_name(home)
    create_database(admin_url, name)
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _admin(admin_url: str) -> Any:
    import psycopg

    from sqlalchemy.engine import make_url

    u = make_url(admin_url)
    return psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database,
                           autocommit=True)


def drop_database(admin_url: str, name: str) -> None:
    """DROP DATABASE ``name``, ending whatever sessions are still on it."""
    with _admin(admin_url) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def create_database(admin_url: str, name: str) -> None:
    """CREATE DATABASE ``name`` on the server of ``admin_url`` unless it is there already."""
    import psycopg

    with _admin(admin_url) as conn:
        try:
            conn.execute(f"CREATE DATABASE {name}")
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            pass                              # there already, or made by another thread just now
