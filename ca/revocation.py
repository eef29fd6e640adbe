"""Certificate status: revoke, hold (挂失), release (解挂), and the CRLs that publish it.

Every change is one store transaction with its history row; a new CRL follows at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterator

from asn1crypto import x509
from cryptography import x509 as cx509

from ca.authority import CertificateAuthority
from ca.storage.store import CertRecord, CrlRecord, RevokedEntry
from keystore import token
from keystore.ca_access import ca_key
from pkicore.algorithms import RawSigner, SigScheme, default_scheme
from pkicore.crlbuild import REVOKE_REASONS, build_crl, entry
from pkicore.errors import ErrorKind, PkiError
from pkicore.x509build import name_of

__all__ = ["REVOKE_REASONS", "Revocation"]


@dataclass(frozen=True)
class CrlSigner:
    """The key and name a CRL is signed with: the CA that issued the listed certificates."""

    authority_id: int
    key: RawSigner
    scheme: SigScheme
    subject: cx509.Name             # as its certificate encodes it
    ski: bytes


class Revocation:
    """Status changes and CRL publication for one CA."""

    def __init__(self, ca: CertificateAuthority) -> None:
        self.ca = ca
        self._root_key: token.TokenKey | None = None
        self.last_published: CrlRecord | None = None

    # --- status -------------------------------------------------------------------

    def revoke(self, serial: str, reason: str = "unspecified", invalidity: datetime | None = None,
               actor: str = "cli") -> CertRecord:
        """Revoke for good (from good or on hold). ``invalidity``: when the key was compromised."""
        if reason not in REVOKE_REASONS:
            raise PkiError(ErrorKind.BAD_INPUT, f"reason must be one of {', '.join(REVOKE_REASONS)}")
        now = self.ca.clock().replace(microsecond=0)   # X.509 times carry whole seconds
        if invalidity is not None and invalidity > now:
            raise PkiError(ErrorKind.BAD_INPUT, "the invalidity (compromise) time cannot be in the future")
        rec = self._revoked(serial, reason, invalidity, actor, now)
        self.publish()
        return rec

    def _revoked(self, serial: str, reason: str, invalidity: datetime | None, actor: str,
                 now: datetime) -> CertRecord:
        return self.ca.store.change_status(serial, allowed_from=("good", "on_hold"), status="revoked",
                                           action="revoke", reason=reason, revoked_at=now,
                                           invalidity_date=invalidity, actor=actor, now=now)

    def revoke_many(self, serials: list[str], reason: str = "unspecified", actor: str = "cli"
                    ) -> tuple[list[CertRecord], list[str]]:
        """Revoke several at once, one CRL after them all: (the ones revoked now, the serials
        that were revoked already and are left as they are)."""
        if reason not in REVOKE_REASONS:
            raise PkiError(ErrorKind.BAD_INPUT, f"reason must be one of {', '.join(REVOKE_REASONS)}")
        now = self.ca.clock().replace(microsecond=0)
        done: list[CertRecord] = []
        already: list[str] = []
        try:
            for serial in serials:
                if self.ca.get(serial).status == "revoked":
                    already.append(serial)
                    continue
                done.append(self._revoked(serial, reason, None, actor, now))
        finally:
            if done:
                self.publish()
        return done, already

    def revoke_issuing_ca(self, reason: str = "cACompromise", invalidity: datetime | None = None,
                          actor: str = "cli") -> CertRecord:
        """Revoke the issuing CA's own certificate: the root's next CRL (published at once)
        lists it, and no certificate under it verifies from then on. Irreversible."""
        if reason not in REVOKE_REASONS or reason == "certificateHold":
            raise PkiError(ErrorKind.BAD_INPUT, f"reason must be one of {', '.join(REVOKE_REASONS)}")
        now = self.ca.clock().replace(microsecond=0)
        if invalidity is not None and invalidity > now:
            raise PkiError(ErrorKind.BAD_INPUT, "the invalidity (compromise) time cannot be in the future")
        self.signer("root")              # the root key first: no revocation its CRL could not list
        serial = self.ca.store.record_authority_certificate("issuing", "root", now)
        current = self.ca.get(serial)
        if current.status == "revoked":  # done before, its CRL not published (a failed run): publish now
            self.publish("root")
            return current
        rec = self._revoked(serial, reason, invalidity, actor, now)
        self.publish("root")
        return rec

    def hold(self, serial: str, actor: str = "cli") -> CertRecord:
        """Suspend (挂失): listed on the CRL with reason certificateHold until released."""
        now = self.ca.clock().replace(microsecond=0)   # X.509 times carry whole seconds
        rec = self.ca.store.change_status(serial, allowed_from=("good",), status="on_hold", action="hold",
                                          reason="certificateHold", revoked_at=now, invalidity_date=None,
                                          actor=actor, now=now)
        self.publish()
        return rec

    def release(self, serial: str, actor: str = "cli") -> CertRecord:
        """Release a hold (解挂): the certificate is good again and leaves the CRL."""
        now = self.ca.clock().replace(microsecond=0)   # X.509 times carry whole seconds
        rec = self.ca.store.change_status(serial, allowed_from=("on_hold",), status="good", action="release",
                                          reason=None, revoked_at=None, invalidity_date=None,
                                          actor=actor, now=now)
        self.publish()
        return rec

    # --- CRLs ---------------------------------------------------------------------

    def _issuing_signer(self) -> CrlSigner:
        issuer = self.ca.issuer()
        rec = self.ca.authority("issuing")
        return CrlSigner(rec.id, issuer.key, issuer.scheme, issuer.subject_name, issuer.cert.key_identifier)

    def _root_signer(self) -> CrlSigner:
        rec = self.ca.authority("root")
        if self._root_key is None or self._root_key.stale:
            self._root_key = ca_key(self.ca.settings, rec.token_label, rec.key_id)
        return CrlSigner(rec.id, self._root_key, default_scheme(self._root_key.key_type), name_of(rec.cert_der),
                         x509.Certificate.load(rec.cert_der).key_identifier)

    def signer(self, which: str) -> CrlSigner:
        if which == "issuing":
            return self._issuing_signer()
        if which == "root":
            return self._root_signer()
        raise PkiError(ErrorKind.NOT_FOUND, f"no CRL for {which!r}: use issuing or root")

    def publish(self, which: str = "issuing") -> CrlRecord:
        """Sign and store a new full CRL for ``which`` CA (its number one higher than any before)."""
        signer = self.signer(which)
        hours = timedelta(hours=self.ca.settings.crl_hours)

        def times() -> tuple[datetime, datetime]:
            # Read by the store once it holds the CRL number: a CRL with a higher number
            # never has an earlier thisUpdate (two publishers racing would, reading first).
            this_update = self.ca.clock().replace(microsecond=0)
            return this_update, this_update + hours

        def make(number: int, rows: Iterator[RevokedEntry], this_update: datetime,
                 next_update: datetime) -> tuple[bytes, int]:
            listed = [entry(*r) for r in rows]      # the builder takes a list anyway
            der = build_crl(signer.key, signer.scheme, issuer=signer.subject, issuer_ski=signer.ski,
                            number=number, this_update=this_update, next_update=next_update, entries=listed)
            return der, len(listed)

        self.last_published = self.ca.store.publish_crl(signer.authority_id, make, times)
        return self.last_published

    def due(self, which: str = "issuing") -> bool:
        """No CRL yet, or less than a quarter of its validity left (RFC 5280 §5.1.2.5: a new
        CRL is issued before nextUpdate)."""
        signer_id = self.ca.authority(which).id if which in ("issuing", "root") else -1
        if signer_id < 0:
            raise PkiError(ErrorKind.NOT_FOUND, f"no CRL for {which!r}")
        latest = self.ca.store.latest_crl(signer_id)
        margin = timedelta(hours=self.ca.settings.crl_hours) / 4
        return latest is None or latest.next_update - self.ca.clock() < margin

    def current(self, which: str = "issuing") -> CrlRecord:
        """The newest CRL, published afresh when it is due (`udun ca crl --due`, `ca jobs`)."""
        if self.due(which):
            return self.publish(which)
        return self.ca.latest_crl(which)
