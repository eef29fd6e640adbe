"""Creating SoftHSM tokens (python-pkcs11 cannot initialise a token).

Real USB keys come initialised from their vendor; only SoftHSM needs this.
"""
from __future__ import annotations

import os
import shutil
import subprocess

from keystore import token
from config.settings import Settings
from pkicore.errors import ErrorKind, PkiError

MIN_PIN = 4
MAX_PIN = 255


def check_pin(pin: str, what: str = "PIN") -> None:
    """SoftHSM accepts 4..255 bytes; refuse early with a clear message."""
    if not MIN_PIN <= len(pin.encode()) <= MAX_PIN:
        raise PkiError(ErrorKind.BAD_INPUT, f"the {what} must be {MIN_PIN} to {MAX_PIN} bytes long")


def init_token(settings: Settings, label: str, pin: str, so_pin: str) -> str:
    """Initialise a new SoftHSM token in the next free slot; returns its serial."""
    if not settings.uses_softhsm:
        raise PkiError(ErrorKind.UNSUPPORTED,
                       "token init only works with SoftHSM; initialise a USB key with its vendor tool")
    if not label or len(label.encode()) > 32:
        raise PkiError(ErrorKind.BAD_INPUT, "a token label must be 1 to 32 bytes")
    check_pin(pin)
    check_pin(so_pin, "SO PIN")
    exe = shutil.which("softhsm2-util")
    if exe is None:
        raise PkiError(ErrorKind.TOKEN, "softhsm2-util not found: install the softhsm2 package")
    if any(t.label == label for t in token.list_tokens(settings)):
        raise PkiError(ErrorKind.CONFLICT, f"a token labelled {label!r} exists already")
    token.write_softhsm_conf(settings)
    env = dict(os.environ, SOFTHSM2_CONF=str(settings.softhsm_conf))
    # softhsm2-util only takes PINs as arguments; they are visible to this machine's
    # process list for the few milliseconds the tool runs, and are never logged.
    proc = subprocess.run(
        [exe, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin],
        env=env, capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        detail = proc.stderr.replace(pin, "***").replace(so_pin, "***").strip().splitlines()
        raise PkiError(ErrorKind.TOKEN, f"softhsm2-util failed: {detail[-1] if detail else proc.returncode}")
    token.refresh(settings)
    return str(token.find_token(settings, label=label).serial.decode())
