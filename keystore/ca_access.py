"""Access to the CA's own keys (root and issuing CA): the CA PIN and its key sessions.

Only operator commands (`udun ca ...`) and the admin service import this module; the
bank-facing server must not (an import-linter contract in pyproject.toml).
"""
from __future__ import annotations

from typing import Any

from config.settings import Settings
from keystore import token
from keystore.pinfile import read_pin


def ca_pin(settings: Settings, create: bool = False) -> str:
    """The CA tokens' user PIN: UDUN_CA_PIN, else the 0600 file written by `ca init`."""
    return read_pin("UDUN_CA_PIN", settings.ca_pin_file, create=create, what="CA PIN",
                    hint="run `udun ca init` where the CA keys are")


def ca_session(settings: Settings, token_label: str, pin: str) -> Any:
    """A session on a CA token, found by its configured serial (UDUN_ROOT/CA_TOKEN_SERIAL) where set."""
    return token.session(settings, token_label, pin, token.configured_serial(settings, token_label))


def ca_key(settings: Settings, token_label: str, key_id: bytes) -> token.TokenKey:
    """A CA key (root or issuing) on its token (the label its record holds, the serial from
    settings), logged in with the CA PIN; it re-opens itself after a token reset."""
    return token.open_key(settings, token_label, key_id, lambda: ca_pin(settings))
