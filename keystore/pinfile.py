"""A token PIN from its environment variable, else from its 0600 file (made on request)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from pkicore.errors import ErrorKind, PkiError


def read_pin(variable: str, path: Path, *, create: bool, what: str, hint: str, nbytes: int = 18) -> str:
    """The PIN in ``variable``, else the first line of ``path``; with ``create``, a new random
    PIN (``nbytes`` random bytes, URL-safe base64) written to ``path`` (0600, in a 0700
    directory) when neither exists."""
    env = os.environ.get(variable)
    if env:
        return env
    if path.exists():
        return path.read_text().strip()
    if not create:
        raise PkiError(ErrorKind.NOT_INITIALISED, f"no {what}: set {variable} or {hint} (expected {path})")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pin = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(pin + "\n")
    return pin
