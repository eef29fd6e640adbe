"""Delegated signing keys (OCSP responder, TSA) as the bank-facing server uses them: the
current key on the online token and its certificate, both found through the database.

This module never makes a key or a certificate: ca.renewal does, where the CA key is
(`udun ca init`, `udun ca renew-delegated`, `udun ca jobs`). A server notices a renewal
by re-reading the ``authorities`` row every RELOAD seconds, or at once when its
certificate has ended.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import x509

from ca.directory import CaDirectory
from keystore import token
from keystore.online import online_key
from pkicore.algorithms import SigScheme, default_scheme
from pkicore.errors import ErrorKind, PkiError

RELOAD_SECONDS = 30.0


@dataclass(frozen=True)
class Delegated:
    """A delegated key, its certificate, and when that certificate ends."""

    key: token.TokenKey
    scheme: SigScheme
    cert: x509.Certificate
    not_after: datetime


class DelegatedKey:
    """One named delegated key (``authorities`` row ``name``), loaded from the online token."""

    def __init__(self, ca: CaDirectory, name: str, what: str) -> None:
        self.ca = ca
        self.name = name
        self.what = what                     # for messages: "OCSP responder", "TSA"
        self._current: Delegated | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def current(self) -> Delegated:
        """The key and certificate; a renewed one once the database names it."""
        d = self._current
        due = time.monotonic() - self._checked >= RELOAD_SECONDS
        if d is None or d.key.stale or due or d.not_after <= self.ca.clock():
            with self._lock:
                d = self._reload(d)
        return d

    def _reload(self, d: Delegated | None) -> Delegated:
        rec = self.ca.store.authority(self.name)
        self._checked = time.monotonic()
        if rec is None:
            raise PkiError(ErrorKind.NOT_INITIALISED, f"no {self.what} key yet: run `udun ca renew-delegated`")
        if d is None or d.key.stale or d.cert.dump() != rec.cert_der:
            if rec.token_label != self.ca.settings.online_token:
                raise PkiError(ErrorKind.NOT_INITIALISED,
                               f"the {self.what} key is on token {rec.token_label!r}, not on the online token "
                               f"{self.ca.settings.online_token!r}: run `udun ca renew-delegated --force`")
            key = online_key(self.ca.settings, rec.key_id)
            cert = x509.Certificate.load(rec.cert_der)
            d = Delegated(key, default_scheme(key.key_type), cert,
                          cert["tbs_certificate"]["validity"]["not_after"].native)
            self._current = d
        if d.not_after <= self.ca.clock():
            raise PkiError(ErrorKind.UNAVAILABLE, f"the {self.what} certificate has expired: run "
                                                  "`udun ca renew-delegated` (or `udun ca jobs`)")
        return d
