"""Access to the online token: the delegated OCSP responder and TSA keys, under a PIN of
their own (UDUN_ONLINE_PIN or $UDUN_HOME/secrets/online.pin). The bank-facing server holds
this PIN and no other: with it nobody can sign a certificate or a CRL.

The token is found by UDUN_ONLINE_TOKEN_SERIAL where set (label UDUN_ONLINE_TOKEN checked
too), else by the label; keys by the key ids the CA's records hold (keystore.token.open_key).
"""
from __future__ import annotations

from typing import Any

from config.settings import Settings
from keystore import token
from keystore.pinfile import read_pin


def online_pin(settings: Settings, create: bool = False) -> str:
    """The online token's user PIN: UDUN_ONLINE_PIN, else the 0600 file written by `ca init`."""
    return read_pin("UDUN_ONLINE_PIN", settings.online_pin_file, create=create, what="online-token PIN",
                    hint="copy secrets/online.pin from the CA's UDUN_HOME")


def online_session(settings: Settings) -> Any:
    """The logged-in session on the online token (the CA side makes and destroys keys with it)."""
    return token.session(settings, settings.online_token, online_pin(settings),
                         token.configured_serial(settings, settings.online_token))


def online_key(settings: Settings, key_id: bytes) -> token.TokenKey:
    """A delegated key on the online token; it re-opens itself after a token reset."""
    return token.open_key(settings, settings.online_token, key_id, lambda: online_pin(settings))
