"""Copies of SoftHSM tokens for other homes: a node's (the online token and its PIN,
nothing of the CA's) or a second operator's (the CA tokens). Used by tests/nodes.py and
bench/nodes.py; hsm-config/copy-online-token.sh is the operator's version.

SoftHSM keeps each token in a directory of its own under the config's tokendir; to copy
one we find its directory from its label: `softhsm2-util --show-slots` gives label and
serial, and SoftHSM derives a token's serial from the UUID that names its directory.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ONLINE_TOKEN = "udun-online"
CA_TOKENS = ("udun-ca", "udun-root")


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
    if not serial:
        raise RuntimeError(f"no token {label!r} in {home}")
    dirs = [d for d in (home / "tokens").iterdir() if d.is_dir() and _serial_of_directory(d.name) == serial]
    if len(dirs) != 1:
        raise RuntimeError(f"token {label!r} (serial {serial}): {len(dirs)} directories in {home / 'tokens'}")
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
    got = token_serials(dst_home)
    if got != want:
        raise RuntimeError(f"{dst_home}: tokens {got}, expected {want}")


def make_node_home(ca_home: Path, node_home: Path) -> Path:
    """A bank-facing node's UDUN_HOME: the online token and its PIN, nothing of the CA's."""
    copy_tokens(ca_home, node_home, (ONLINE_TOKEN,), ("online.pin",))
    if (node_home / "secrets" / "ca.pin").exists():
        raise RuntimeError(f"node home {node_home} holds the CA PIN")
    return node_home


def make_admin_home(ca_home: Path, admin_home: Path) -> Path:
    """A second operator home: copies of the root and issuing CA tokens and the CA PIN."""
    copy_tokens(ca_home, admin_home, CA_TOKENS, ("ca.pin",))
    return admin_home
