"""A throwaway PostgreSQL server for the PostgreSQL and three-node figures.

The minimal part of tests/pgserver.py, copied rather than imported: the tests' server
turns fsync and full_page_writes off (nothing of a test run must outlive it), which would
flatter PostgreSQL against SQLite. Here the server keeps fsync and full_page_writes on
and turns only synchronous_commit off: a commit does not wait for its WAL flush, which is
what SQLite in WAL mode with synchronous=NORMAL (udun's setting) does too — both may lose
the last commits on a power loss, neither is corrupted by one. (README recommends
synchronous commit in production, for answered evidence to survive a power loss; that
costs a WAL flush per commit, on PostgreSQL and on SQLite with synchronous=FULL alike.)

Debian's `postgresql` package gives the binaries (scripts/bootstrap.sh installs it); the
cluster lives in a temporary directory of its own (the bench's home is 0700 root, which the
`postgres` user could not enter), listens on a free loopback port and is removed at the end. initdb and postgres refuse to run as root, so as root they run as the
`postgres` user (setpriv), which then owns the directory.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench.http_load import free_port
from bench.measure import log

USER = "udun"                       # the cluster's superuser, trusted on loopback
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "synchronous_commit": "off",    # = SQLite WAL + synchronous=NORMAL; fsync stays on
    "max_connections": "200",
    "shared_buffers": "128MB",
}


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL's server binaries are missing: apt-get install postgresql "
                           "(scripts/bootstrap.sh does)")
    return Path(found[-1]).parent


class Postgres:
    """``start()`` -> the admin URL; ``database(name)`` -> a new database's URL; ``stop()``."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="udun-bench-pg-"))
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
        subprocess.run([*self._as, str(bindir / "initdb"), "-D", str(data), "-U", USER, "-A", "trust",
                        "-E", "UTF8", "--locale=C"], check=True, capture_output=True, timeout=180)
        options = [x for k, v in SETTINGS.items() for x in ("-c", f"{k}={v}")]
        for _ in range(5):                    # a port taken between the probe and the bind: next one
            self.port = free_port()
            with open(self.dir / "server.log", "ab") as logf:
                self.proc = subprocess.Popen([*self._as, str(bindir / "postgres"), "-D", str(data), "-p",
                                              str(self.port), "-k", str(self.dir), *options],
                                             stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
            if self._wait_ready():
                log(f"PostgreSQL {bindir.parent.name} on port {self.port} ({', '.join(f'{k}={v}' for k, v in SETTINGS.items())})")
                return self.url()
            self._kill()
        raise RuntimeError("PostgreSQL did not start: "
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

    def database(self, name: str) -> str:
        """CREATE DATABASE ``name``; its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

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
