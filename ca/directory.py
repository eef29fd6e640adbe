"""What every udun process may know of the CA without holding its keys: the authorities'
certificates, the certificates issued, their status and the CRLs, all from the database.

The bank-facing server works from this alone (with the delegated keys of ca.delegated);
ca.authority.CertificateAuthority extends it with the issuing key.
"""
from __future__ import annotations

from datetime import datetime

from ca.certquery import CertificateQuery, Page
from config.settings import Settings
from ca.storage.engine import make_engine
from ca.storage.migrate import migrate
from ca.storage.search import search
from ca.storage.store import AuthorityRecord, CertRecord, CrlRecord, Store
from pkicore.clock import Clock, system_clock
from pkicore.errors import ErrorKind, PkiError

CA_NAMES = ("issuing", "root")


class CaDirectory:
    """The CA's public side over one database: certificates, status, CRLs; no keys."""

    def __init__(self, settings: Settings, store: Store, clock: Clock = system_clock) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self._authorities: dict[str, AuthorityRecord] = {}

    @classmethod
    def open(cls, settings: Settings, clock: Clock = system_clock, *, migrate_schema: bool = True):  # type: ignore[no-untyped-def]
        engine = make_engine(settings)
        if migrate_schema:
            migrate(engine, settings.home / "migrate.lock")
        return cls(settings, Store(engine), clock)

    def authority(self, name: str) -> AuthorityRecord:
        """The root or issuing CA row; cached once found (they never change after `ca init`)."""
        rec = self._authorities.get(name)
        if rec is None:
            rec = self.store.authority(name)
            if rec is None:
                raise PkiError(ErrorKind.NOT_INITIALISED, "the CA is not initialised: run `udun ca init`")
            if name in CA_NAMES:
                self._authorities[name] = rec
        return rec

    def chain_der(self) -> list[bytes]:
        """Issuing CA then root: what a bank installs as trust anchors."""
        return [self.authority("issuing").cert_der, self.authority("root").cert_der]

    def search(self, query: CertificateQuery) -> Page:
        """One page of the certificates ``query`` asks for, newest first, statuses as of now."""
        return search(self.store.engine, query, self.clock())

    def get(self, serial: str) -> CertRecord:
        rec = self.store.certificate(serial.lower().removeprefix("0x"))
        if rec is None:
            raise PkiError(ErrorKind.NOT_FOUND, f"no certificate with serial {serial}")
        return rec

    def unusable(self, rec: CertRecord, now: datetime) -> str | None:
        """Why ``rec`` cannot be used to log in or to renew now (None: it can): it must be
        one of the issuing CA's, issued, good (not held, not revoked) and within its validity."""
        if rec.der is None or rec.state != "issued":
            return "was never issued"
        if rec.authority_id != self.authority("issuing").id:
            return "is not one of the issuing CA's"
        if rec.status != "good":
            return "is on hold" if rec.status == "on_hold" else "is revoked"
        if not rec.not_before <= now < rec.not_after:
            return "is expired" if now >= rec.not_after else "is not valid yet"
        return None

    def latest_crl(self, which: str) -> CrlRecord:
        """The newest CRL the CA published for ``which`` (issuing or root), as stored."""
        if which not in CA_NAMES:
            raise PkiError(ErrorKind.NOT_FOUND, f"no CRL for {which!r}: use issuing or root")
        rec = self.store.latest_crl(self.authority(which).id)
        if rec is None:
            raise PkiError(ErrorKind.NOT_INITIALISED, f"no {which} CRL published yet: run `udun ca crl --due`")
        return rec
