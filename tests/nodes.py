"""Several stateless `udun serve` nodes on one database (issue 11): node homes, admin services.

A node is what README "Processes and the keys each one holds" says another machine needs:
its own UDUN_HOME holding a copy of the online token (the delegated OCSP and TSA keys) and
secrets/online.pin, and the CA home's database URL, given to it explicitly. It never sees
secrets/ca.pin or the CA tokens. A second admin home gets copies of the CA tokens instead
(two operator machines with one HSM partition between them).

Node and admin homes are made by tests/tokencopy.py.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from helpers import free_port, home_env, running_server, stop_process
from tokencopy import make_admin_home, make_node_home

__all__ = ["make_admin_home", "make_node_home"]
START_SECONDS = 60.0                  # a gunicorn master with its workers, on a loaded machine


def shared_database_url(ca_home: Path) -> str:
    """The CA home's database, the one every node and admin service is handed explicitly.

    On PostgreSQL runs that is the database helpers.home_env gives the CA home; on SQLite
    the CA home's file (WAL mode, shared by processes on one machine)."""
    url = home_env({"UDUN_HOME": str(ca_home)}).get("UDUN_DATABASE_URL")
    return url or f"sqlite:///{ca_home / 'udun.db'}"


@dataclass(frozen=True)
class Admin:
    """One `udun serve-admin` process."""

    home: Path
    base: str
    proc: subprocess.Popen[bytes]


_stop = stop_process


@contextlib.contextmanager
def running_admin(home: Path, api_key: str, database_url: str, extra_env: dict[str, str] | None = None
                  ) -> Iterator[Admin]:
    """`udun serve-admin` (one worker) on a free loopback port, on ``database_url``; its CA
    PIN from the home's secrets/ca.pin."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "UDUN_CA_PIN"}
    env.update({"UDUN_HOME": str(home), "UDUN_ADMIN_API_KEY": api_key, "UDUN_DATABASE_URL": database_url,
                **(extra_env or {})})
    # Its stderr goes to a file, not a pipe nobody reads while it runs (a full pipe blocks it).
    log = home / f"serve-admin-{port}.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "udun.cli", "serve-admin", "--port", str(port)],
                                env=home_env(env), stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_SECONDS
    try:
        while True:
            req = urllib.request.Request(f"{base}/healthz", headers={"Authorization": f"Bearer {api_key}"})
            try:
                with urllib.request.urlopen(req, timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    _stop(proc)
                    raise RuntimeError(f"serve-admin did not start: {log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.2)
        yield Admin(home, base, proc)
    finally:
        _stop(proc)


@dataclass(frozen=True)
class Node:
    """One bank-facing `udun serve` node (a gunicorn master and its workers)."""

    name: str
    home: Path
    base: str
    proc: subprocess.Popen[bytes]

    def kill(self) -> None:
        """SIGKILL the master and every worker at once (its own process group): no clean-up."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@contextlib.contextmanager
def running_node(name: str, home: Path, database_url: str, workers: int,
                 extra_env: dict[str, str] | None = None) -> Iterator[Node]:
    """`udun serve` in ``home`` (made by make_node_home) on the shared ``database_url``."""
    env = {"UDUN_DATABASE_URL": database_url, **(extra_env or {})}
    with running_server(home, workers=workers, extra_env=env) as (base, proc):
        yield Node(name, home, base, proc)
