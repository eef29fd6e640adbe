"""Signing a payment: validate, show, confirm, then sign CMS on the token."""
from __future__ import annotations

from datetime import datetime

from pkicore import tx as txmod
from pkicore.algorithms import SigScheme
from pkicore.clock import Clock, system_clock
from pkicore.cms_build import sign_data
from config.settings import Settings
from signer.tokens import Token, certificate_and_chain


def sign_transaction(settings: Settings, label: Token, pin: str, tx: txmod.Transaction, *,
                     detached: bool = False, scheme: SigScheme | None = None,
                     clock: Clock = system_clock, signing_time: datetime | None = None) -> bytes:
    """CAdES-BES over the transaction's canonical bytes; returns CMS DER.

    The caller must have shown ``txmod.describe(tx)`` to the user and had it confirmed.
    """
    key, cert, chain = certificate_and_chain(settings, label, pin)
    return sign_data(key, cert, chain, tx.canonical_bytes(), signing_time=signing_time or clock(),
                     detached=detached, scheme=scheme)
