"""Access to the CA's own keys (root and issuing CA): the CA PIN and its key sessions.

Only operator commands (`udun ca ...`) and the admin service import this module; the
bank-facing server must not (an import-linter contract in pyproject.toml).
"""
from __future__ import annotations

from config.settings import Settings
from keystore import token
from keystore.pinfile import read_pin


def ca_pin(settings: Settings, create: bool = False) -> str:
    """The CA tokens' user PIN: UDUN_CA_PIN, else the 0600 file written by `ca init`."""
    return read_pin("UDUN_CA_PIN", settings.ca_pin_file, create=create, what="CA PIN",
                    hint="run `udun ca init` where the CA keys are")


def ca_key(settings: Settings, token_label: str, key_id: bytes) -> token.TokenKey:
    """A CA key (root or issuing) on its token, logged in with the CA PIN."""
    return token.load_key(token.session(settings, token_label, ca_pin(settings)), key_id=key_id)
