"""Delegated signing keys (OCSP responder, TSA) as the bank-facing server uses them: the
current key on the online token and its certificate, both found through the database.

This module never makes a key or a certificate: ca.renewal does, where the CA key is
(`udun ca init`, `udun ca renew-delegated`, `udun ca jobs`). A server notices a renewal
by re-reading the ``authorities`` row every RELOAD seconds, or at once when its
certificate has ended.

Keys are found on the online token by the key id the records hold (keystore.online), and
re-open themselves after a token reset. A token that cannot be reached is UNAVAILABLE
(HTTP 503): `udun serve` starts anyway (check_at_start) and recovers when it is back.
"""
from __future__ import annotations

import logging
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
NAMES = (("ocsp", "OCSP responder"), ("tsa", "TSA"))
# A delegated key cannot sign now: its token, PIN, key or record (HTTP 503 in
# webapi.problems; tryLater for OCSP, a 503 with systemFailure for the TSA).
CANNOT_SIGN = frozenset({ErrorKind.UNAVAILABLE, ErrorKind.TOKEN, ErrorKind.PIN, ErrorKind.NOT_INITIALISED})
_log = logging.getLogger("udun.delegated")


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
            try:
                key = online_key(self.ca.settings, rec.key_id)
            except PkiError as e:
                renewed = d is not None and d.cert.dump() != rec.cert_der
                if e.kind is not ErrorKind.TOKEN or not renewed or d is None or d.not_after <= self.ca.clock():
                    raise
                # A renewed key this node's copy of the online token does not hold yet (it
                # is copied after each renewal, hsm-config/README.md): the previous key and
                # certificate stay valid until their end, so keep signing with them and
                # look again at the next reload.
                _log.warning("the renewed %s key %s cannot be opened (%s); still signing with the previous one "
                             "until %s", self.what, rec.key_id.hex(), e, d.not_after.isoformat())
                return d
            cert = x509.Certificate.load(rec.cert_der)
            d = Delegated(key, default_scheme(key.key_type), cert,
                          cert["tbs_certificate"]["validity"]["not_after"].native)
            self._current = d
        if d.not_after <= self.ca.clock():
            raise PkiError(ErrorKind.UNAVAILABLE, f"the {self.what} certificate has expired: run "
                                                  "`udun ca renew-delegated` (or `udun ca jobs`)")
        return d


def check_at_start(ca: CaDirectory) -> list[str]:
    """What `udun serve` checks before its workers start: each delegated key's record, its
    token and the key on it. A token or module that cannot be reached now is a warning (the
    workers retry and answer 503 until it is back); anything else raises: no key yet, a
    wrong serial or label, a missing key, a wrong PIN."""
    warnings = []
    for name, what in NAMES:
        try:
            DelegatedKey(ca, name, what).current()
        except PkiError as e:
            if e.kind is not ErrorKind.UNAVAILABLE:
                raise
            warnings.append(f"the {what} key cannot be used now: {e.message}")
    return warnings
