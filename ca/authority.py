"""The CA service: set-up and two-phase issuance, composed from policy, issuer and store."""
from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509 as cx509

from ca import policy, profiles
from ca.customers import Customers
from ca.directory import CaDirectory
from ca.issuer import Issuer, Prepared, lint
from ca.storage.store import AuthorityRecord, CertRecord, NewAuthority, Store
from keystore import softhsm, token
from keystore.ca_access import ca_key, ca_pin, ca_session
from keystore.online import online_pin
from pkicore import names
from pkicore.algorithms import KeyType, default_scheme
from pkicore.clock import Clock, system_clock
from config.settings import Settings
from pkicore.errors import ErrorKind, PkiError
from config.locks import file_lock
from pkicore.x509build import (
    Extension,
    certificate_builder,
    der_of,
    identifiers,
    key_identifier,
    sign_certificate,
    tbs_certificate,
)

ROOT_YEARS = 10
ISSUING_YEARS = 5
SERIAL_ATTEMPTS = 5
BACKDATE = timedelta(minutes=1)   # tolerate small clock skew at relying parties


def new_serial() -> int:
    """RFC 5280 §4.1.2.2 positive serial, 126 random bits (CA/B asks for >= 64), 16 octets."""
    return secrets.randbits(126) | (1 << 126)


def _subject_text(cert_der: bytes) -> str:
    return cx509.load_der_x509_certificate(cert_der).subject.rfc4514_string()


@dataclass(frozen=True)
class InitResult:
    root: AuthorityRecord
    issuing: AuthorityRecord


class CertificateAuthority(CaDirectory):
    """udun's CA over one database and the CA tokens: issuance with the issuing key.

    Operator commands and the admin service only; the bank-facing server has a CaDirectory.
    """

    def __init__(self, settings: Settings, store: Store, clock: Clock = system_clock) -> None:
        super().__init__(settings, store, clock)
        self._issuer: Issuer | None = None
        self._issuer_until: datetime | None = None
        self._extensions: dict[tuple[str, bytes], list[Extension]] = {}

    # --- set-up -----------------------------------------------------------------

    def _create_tokens(self, pin: str, so_pin: str) -> None:
        """SoftHSM: create the CA tokens and the online token (its own PIN) first; creating
        one later resets open sessions."""
        if not self.settings.uses_softhsm:
            return
        present = {t.label for t in token.list_tokens(self.settings)}
        for label, token_pin in ((self.settings.root_token, pin), (self.settings.ca_token, pin),
                                 (self.settings.online_token, online_pin(self.settings, create=True))):
            if label not in present:
                softhsm.init_token(self.settings, label, token_pin, so_pin)

    def _token_key(self, label: str, pin: str, key_type: KeyType, key_label: str) -> token.TokenKey:
        # The token by its configured serial where one is set (the label checked too).
        s = ca_session(self.settings, label, pin)
        return token.generate_key(s, key_type, secrets.token_bytes(8), key_label)

    def init(self, key_type: KeyType = KeyType.EC_P256, org: str = "udun",
             root_cn: str = "udun Root CA", issuing_cn: str = "udun Issuing CA") -> InitResult:
        """Root key on its own token, issuing key on the CA token, both certificates stored.

        One `ca init` at a time per UDUN_HOME (a file lock), and both authorities are
        stored in one transaction, so a failure leaves either no CA or a whole one.
        """
        with file_lock(self.settings.home / "ca-init.lock"):
            done = self._init(key_type, org, root_cn, issuing_cn)
        # What the bank-facing server needs and cannot make itself: the delegated OCSP and
        # TSA keys with their certificates, and a first CRL of each CA.
        from ca import renewal
        from ca.revocation import Revocation

        renewal.renew_all(self)
        revocation = Revocation(self)
        for which in ("issuing", "root"):
            revocation.publish(which)
        return done

    def _init(self, key_type: KeyType, org: str, root_cn: str, issuing_cn: str) -> InitResult:
        if self.store.authority("root") is not None:
            raise PkiError(ErrorKind.CONFLICT, "the CA is initialised already")
        if key_type is KeyType.RSA_2048:
            raise PkiError(ErrorKind.POLICY, "CA keys are ec-p256 or rsa-3072")
        pin = ca_pin(self.settings, create=True)
        so_pin = os.environ.get("UDUN_SO_PIN") or secrets.token_urlsafe(18)
        now = self.clock().replace(microsecond=0)
        scheme = default_scheme(key_type)

        self._create_tokens(pin, so_pin)
        root_key = self._token_key(self.settings.root_token, pin, key_type, "udun root CA")
        root_name = names.build([("organization_name", org), ("common_name", root_cn)])
        root_ski = key_identifier(root_key.public_key_der)
        root_until = now + timedelta(days=365 * ROOT_YEARS + 2)
        root_der = der_of(sign_certificate(certificate_builder(
            serial=new_serial(), issuer=names.to_cryptography(root_name), subject=names.to_cryptography(root_name),
            public_key_der=root_key.public_key_der, not_before=now - BACKDATE, not_after=root_until,
            extensions=profiles.root_extensions(root_ski)), root_key, scheme))

        ca_key = self._token_key(self.settings.ca_token, pin, key_type, "udun issuing CA")
        ca_name = names.build([("organization_name", org), ("common_name", issuing_cn)])
        if ca_name == root_name:
            raise PkiError(ErrorKind.BAD_INPUT, "the root and the issuing CA need different names")
        ca_ski = key_identifier(ca_key.public_key_der)
        ca_until = now + timedelta(days=365 * ISSUING_YEARS + 1)
        ca_der = der_of(sign_certificate(certificate_builder(
            serial=new_serial(), issuer=names.to_cryptography(root_name), subject=names.to_cryptography(ca_name),
            public_key_der=ca_key.public_key_der, not_before=now - BACKDATE, not_after=ca_until,
            extensions=profiles.issuing_ca_extensions(self.settings, ca_ski, root_ski)), root_key, scheme))

        root, issuing = self.store.add_authorities([
            NewAuthority("root", self.settings.root_token, root_key.key_id, key_type.value,
                         _subject_text(root_der), root_der, root_until),
            NewAuthority("issuing", self.settings.ca_token, ca_key.key_id, key_type.value,
                         _subject_text(ca_der), ca_der, ca_until),
        ], now)
        return InitResult(root, issuing)

    # --- issuance ---------------------------------------------------------------

    def issuer(self) -> Issuer:
        """The issuing CA key, logged in once per process (again after a token reset)."""
        if self._issuer is None or getattr(self._issuer.key, "stale", False):
            rec = self.authority("issuing")
            self._issuer = Issuer(ca_key(self.settings, rec.token_label, rec.key_id), rec.cert_der)
        return self._issuer

    def _profile_extensions(self, prof: profiles.Profile, issuer: Issuer) -> list[Extension]:
        """The extensions every certificate of a profile shares (all but the SKI), made once."""
        key = (prof.name, issuer.cert.key_identifier)
        cached = self._extensions.get(key)
        if cached is None:
            cached = self._extensions[key] = [
                e for e in profiles.extensions(self.settings, prof, b"", issuer.cert.key_identifier)
                if not isinstance(e.value, cx509.SubjectKeyIdentifier)]
        return cached

    def prepare(self, csr_der: bytes, profile_name: str = "client") -> tuple[Prepared, policy.CheckedRequest]:
        """Policy and profile: everything up to the TBS certificate, linted, no signing."""
        checked = policy.check_csr(csr_der, profile_name)
        prof = profiles.profile(profile_name, self.settings)
        issuer = self.issuer()
        now = self.clock().replace(microsecond=0)
        not_before = now - BACKDATE
        not_after = min(now + prof.validity, self._issuer_not_after(issuer))
        if not_after <= now:
            raise PkiError(ErrorKind.POLICY, "the issuing CA certificate has expired")
        serial = new_serial()
        builder = certificate_builder(
            serial=serial, issuer=issuer.subject_name, subject=checked.subject_name,
            public_key_der=checked.public_key_der, not_before=not_before, not_after=not_after,
            extensions=self._profile_extensions(prof, issuer)
            + identifiers(key_identifier(checked.public_key_der), None),
        )
        tbs = tbs_certificate(builder, issuer.key, issuer.scheme)
        lint(tbs, issuer.lint_facts)
        return Prepared(builder, tbs, serial, not_before, not_after), checked

    def _issuer_not_after(self, issuer: Issuer) -> datetime:
        if self._issuer_until is None:
            self._issuer_until = issuer.cert["tbs_certificate"]["validity"]["not_after"].native
        return self._issuer_until

    def issue(self, csr_der: bytes, profile_name: str = "client", requester: str = "cli",
              customer: str | None = None) -> CertRecord:
        """Two-phase issuance for a requester's CSR: record the intent, sign once, store.

        Only the profiles a CSR may ask for (profiles.REQUESTABLE): the delegated OCSP
        responder and TSA certificates are made by ca.renewal for the CA's own keys.
        ``customer``: the customer the certificate is bound to (ca.customers; it must
        exist), stored with the certificate. Without one it pays from no account.
        """
        if profile_name not in profiles.REQUESTABLE:
            raise PkiError(ErrorKind.BAD_INPUT, f"unknown profile {profile_name!r}; known: "
                                                f"{', '.join(profiles.REQUESTABLE)}")
        if customer is not None:
            Customers(self.store, self.clock).must_exist(customer)
        return self._issue(csr_der, profile_name, requester, customer)

    def issue_delegated(self, csr_der: bytes, profile_name: str, requester: str) -> CertRecord:
        """A delegated certificate (ocsp-responder, tsa) for a key the CA made on the online
        token (ca.renewal only; never reachable with a requester's CSR)."""
        if profile_name not in profiles.DELEGATED:
            raise PkiError(ErrorKind.INTERNAL, f"{profile_name!r} is not a delegated profile")
        return self._issue(csr_der, profile_name, requester)

    def _issue(self, csr_der: bytes, profile_name: str, requester: str, customer: str | None = None) -> CertRecord:
        issuing = self.authority("issuing")
        for _ in range(SERIAL_ATTEMPTS):
            prepared, checked = self.prepare(csr_der, profile_name)
            created = self.clock()
            if self.store.record_intent(
                serial=prepared.serial_hex, authority_id=issuing.id, profile=profile_name,
                subject=checked.subject_text, requester=requester, tbs_sha256=prepared.tbs_sha256,
                not_before=prepared.not_before, not_after=prepared.not_after, now=created,
                public_key_der=checked.public_key_der, subject_der=checked.subject.dump(),
            ):
                break
        else:
            raise PkiError(ErrorKind.INTERNAL, "could not find an unused serial number")
        try:
            der = self.issuer().sign(prepared)
        except Exception:
            self.store.record_failed(prepared.serial_hex)
            raise
        issued = self.clock()
        self.store.record_issued(prepared.serial_hex, der, hashlib.sha256(der).hexdigest(), issued,
                                 profile=profile_name, subject=checked.subject_text, requester=requester,
                                 customer=customer)
        return CertRecord(
            serial=prepared.serial_hex, authority_id=issuing.id, state="issued", profile=profile_name,
            subject=checked.subject_text, requester=requester, tbs_sha256=prepared.tbs_sha256,
            not_before=prepared.not_before, not_after=prepared.not_after, created_at=created,
            issued_at=issued, der=der,
        )
