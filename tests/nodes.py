"""Several stateless `udun serve` nodes on one database (issue 11): node homes, admin services.

A node is what README "Processes and the keys each one holds" says another machine needs:
its own UDUN_HOME holding a copy of the online token (the delegated OCSP and TSA keys) and
secrets/online.pin, and the CA home's database URL, given to it explicitly. It never sees
secrets/ca.pin or the CA tokens. A second admin home gets copies of the CA tokens instead
(two operator machines with one HSM partition between them).

SoftHSM keeps each token in a directory of its own under the config's tokendir; to copy
one we find its directory from its label: `softhsm2-util --show-slots` gives label and
serial, and SoftHSM derives a token's serial from the UUID that names its directory.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
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

ONLINE_TOKEN = "udun-online"
CA_TOKENS = ("udun-ca", "udun-root")
START_SECONDS = 60.0                  # a gunicorn master with its workers, on a loaded machine


def shared_database_url(ca_home: Path) -> str:
    """The CA home's database, the one every node and admin service is handed explicitly.

    On PostgreSQL runs that is the database helpers.home_env gives the CA home; on SQLite
    the CA home's file (WAL mode, shared by processes on one machine)."""
    url = home_env({"UDUN_HOME": str(ca_home)}).get("UDUN_DATABASE_URL")
    return url or f"sqlite:///{ca_home / 'udun.db'}"


def _softhsm_conf(home: Path) -> Path:
    """The home's SoftHSM config, written as keystore would on first use (tokens under the home)."""
    from config.settings import load_settings
    from keystore.token import write_softhsm_conf

    settings = load_settings({"UDUN_HOME": str(home)})
    write_softhsm_conf(settings)
    return settings.softhsm_conf


def token_serials(home: Path) -> dict[str, str]:
    """Label -> serial of every initialised token of ``home``'s SoftHSM, as softhsm2-util lists them."""
    env = {**os.environ, "SOFTHSM2_CONF": str(_softhsm_conf(home))}
    out = subprocess.run(["softhsm2-util", "--show-slots"], env=env, capture_output=True, text=True, timeout=60,
                         check=True).stdout
    found: dict[str, str] = {}
    for block in out.split("Token info:")[1:]:
        serial = re.search(r"Serial number:[ \t]*(\S*)", block)
        label = re.search(r"Label:[ \t]*(.*)", block)
        if serial and label and serial.group(1) and label.group(1).strip():
            found[label.group(1).strip()] = serial.group(1)
    return found


def _serial_of_directory(name: str) -> str:
    """SoftHSM 2's rule (ObjectStore::newToken): the serial is the token UUID's characters 19-22 and 24-35."""
    return name[19:23] + name[24:]


def token_directory(home: Path, label: str) -> Path:
    """The directory under ``home``/tokens that holds the token ``label``."""
    serial = token_serials(home).get(label)
    assert serial, f"no token {label!r} in {home}"
    dirs = [d for d in (home / "tokens").iterdir() if d.is_dir() and _serial_of_directory(d.name) == serial]
    assert len(dirs) == 1, (label, serial, dirs)
    return dirs[0]


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def copy_tokens(src_home: Path, dst_home: Path, labels: tuple[str, ...], pin_files: tuple[str, ...]) -> None:
    """Copy the tokens ``labels`` and secrets/``pin_files`` of ``src_home`` into ``dst_home``
    (each home its own copy), and check that the copy holds exactly those tokens, same serials."""
    _private_dir(dst_home)
    tokens = _private_dir(dst_home / "tokens")
    for label in labels:
        src = token_directory(src_home, label)
        shutil.copytree(src, tokens / src.name)
    secrets = _private_dir(dst_home / "secrets")
    for name in pin_files:
        shutil.copy2(src_home / "secrets" / name, secrets / name)
        (secrets / name).chmod(0o600)
    want = {label: serial for label, serial in token_serials(src_home).items() if label in labels}
    assert token_serials(dst_home) == want, (dst_home, token_serials(dst_home), want)


def make_node_home(ca_home: Path, node_home: Path) -> Path:
    """A bank-facing node's UDUN_HOME: the online token and its PIN, nothing of the CA's."""
    copy_tokens(ca_home, node_home, (ONLINE_TOKEN,), ("online.pin",))
    assert not (node_home / "secrets" / "ca.pin").exists()
    return node_home


def make_admin_home(ca_home: Path, admin_home: Path) -> Path:
    """A second operator home: copies of the root and issuing CA tokens and the CA PIN."""
    copy_tokens(ca_home, admin_home, CA_TOKENS, ("ca.pin",))
    return admin_home


@dataclass(frozen=True)
class Admin:
    """One `udun serve-admin` process."""

    home: Path
    base: str
    proc: subprocess.Popen[bytes]


_stop = stop_process


@contextlib.contextmanager
def running_admin(home: Path, api_key: str, database_url: str) -> Iterator[Admin]:
    """`udun serve-admin` (one worker) on a free loopback port, on ``database_url``; its CA
    PIN from the home's secrets/ca.pin."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "UDUN_CA_PIN"}
    env.update({"UDUN_HOME": str(home), "UDUN_ADMIN_API_KEY": api_key, "UDUN_DATABASE_URL": database_url})
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
