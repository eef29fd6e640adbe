"""Delegated signing keys on the CA token (OCSP responder, TSA): a key of their own and a
short-lived certificate from our issuing CA, renewed automatically before it expires.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import x509

from ca.authority import CertificateAuthority, ca_pin
from ca.store import NewAuthority
from pkicore import names
from keystore import token
from pkicore.algorithms import KeyType, SigScheme, default_scheme
from config.locks import file_lock
from pkicore.x509build import build_csr


@dataclass(frozen=True)
class Delegated:
    """A delegated key, its certificate, and when that certificate ends."""

    key: token.TokenKey
    scheme: SigScheme
    cert: x509.Certificate
    not_after: datetime


class DelegatedKey:
    """One named delegated key (``authorities`` row ``name``), loaded or renewed on demand."""

    def __init__(self, ca: CertificateAuthority, name: str, profile: str, common_name: str,
                 renew_before: timedelta, key_type: KeyType | None = None) -> None:
        self.ca = ca
        self.name = name
        self.profile = profile
        self.common_name = common_name
        self.renew_before = renew_before
        self.key_type = key_type            # None: the issuing CA's key type
        self._current: Delegated | None = None

    def current(self) -> Delegated:
        """The key and certificate, renewed when less than ``renew_before`` is left."""
        now = self.ca.clock()
        d = self._current
        if d is None or d.key.stale or d.not_after - now < self.renew_before:
            d = self._load()
            if d is None or d.not_after - now < self.renew_before:
                # Several workers find the key missing or due at once: one makes it, the
                # others load what it stored (a file lock: one machine; see README).
                with file_lock(self.ca.settings.home / f"delegated-{self.name}.lock"):
                    d = self._load()
                    if d is None or d.not_after - now < self.renew_before:
                        d = self._renew()
            self._current = d
        return d

    def _load(self) -> Delegated | None:
        rec = self.ca.store.authority(self.name)
        if rec is None:
            return None
        s = token.session(self.ca.settings, rec.token_label, ca_pin(self.ca.settings))
        key = token.load_key(s, key_id=rec.key_id)
        cert = x509.Certificate.load(rec.cert_der)
        return Delegated(key, default_scheme(key.key_type), cert,
                         cert["tbs_certificate"]["validity"]["not_after"].native)

    def renew(self) -> Delegated:
        """A new key and certificate now, whatever the current one's validity."""
        with file_lock(self.ca.settings.home / f"delegated-{self.name}.lock"):
            self._current = self._renew()
        return self._current

    def _renew(self) -> Delegated:
        """A new key on the CA token and a certificate of ``profile`` for it."""
        settings = self.ca.settings
        s = token.session(settings, settings.ca_token, ca_pin(settings))
        key_type = self.key_type or self.ca.issuer().key.key_type
        key = token.generate_key(s, key_type, secrets.token_bytes(8), f"udun {self.common_name}")
        org = next((v for n, v in names.pairs_of(self.ca.issuer().cert.subject) if n == "organization_name"), "udun")
        subject = names.build([("organization_name", org), ("common_name", f"udun {self.common_name}")])
        rec = self.ca.issue(build_csr(key, subject), self.profile, requester=f"{self.name}-renewal")
        assert rec.der is not None
        self.ca.store.replace_authority(NewAuthority(self.name, settings.ca_token, key.key_id,
                                                     key.key_type.value, rec.subject, rec.der, rec.not_after),
                                        self.ca.clock())
        return Delegated(key, default_scheme(key.key_type), x509.Certificate.load(rec.der), rec.not_after)
