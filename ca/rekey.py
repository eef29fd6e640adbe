"""Renewal and re-key of a customer's certificate (issue 12 point 6), where the CA key is.

- **Renewal** (`udun token renew`): a new certificate for the same key and subject. The
  current key signs ``pkicore.adminsig.renew_message`` (the serial and the CSR's SHA-256): a
  CSR alone is no credential, CSRs are not secret. Allowed in the last
  ``renew_before_days`` of the current certificate's validity (UDUN_RENEW_BEFORE_DAYS), once
  (a certificate with a successor is not renewed again); the current one stays valid until
  it ends.
- **Re-key** (`udun token rekey`): a new key pair made on the token, its CSR, and the
  current key's signature over ``pkicore.adminsig.rekey_message`` (binding the new CSR to
  the current certificate). Allowed any time while the current certificate is good; it is
  revoked as superseded once the new one is issued.

Either way the current certificate must be one of the issuing CA's, issued under a
requestable profile, good (not held, not revoked) and within its validity now.
"""
from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

from asn1crypto import csr as asn1csr
from asn1crypto import x509 as asn1x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key

from ca.authority import CertificateAuthority
from ca.enrollments import csr_subject
from ca.profiles import REQUESTABLE
from ca.storage.customers import CustomerStore
from ca.storage.store import CertRecord, spki_sha256
from pkicore import names
from pkicore.adminsig import rekey_message, renew_message
from pkicore.algorithms import SigScheme
from pkicore.clock import Clock
from pkicore.errors import ErrorKind, PkiError
from pkicore.sigverify import SignatureError, verify_scheme


def _spki(public_key_info: Any) -> bytes:
    """A public key's SubjectPublicKeyInfo as cryptography encodes it: one form for one key
    (an EC point compressed, RSA parameters left out: the same key either way)."""
    try:
        return load_der_public_key(public_key_info.dump()).public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except Exception:  # noqa: BLE001  cryptography raises ValueError and friends on garbage
        raise PkiError(ErrorKind.BAD_CSR, "the CSR's public key does not read") from None


def _csr_key(csr_der: bytes) -> bytes:
    try:
        info = asn1csr.CertificationRequest.load(csr_der)["certification_request_info"]["subject_pk_info"]
    except Exception:  # noqa: BLE001  asn1crypto raises ValueError and friends on garbage
        raise PkiError(ErrorKind.BAD_CSR, "not a valid PKCS#10 certificate request") from None
    return _spki(info)


def _signed_by(cert: asn1x509.Certificate, signature_b64: str, scheme: str, message: bytes) -> None:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError:
        raise PkiError(ErrorKind.BAD_INPUT, "signature is base64", field="signature") from None
    try:
        verify_scheme(cert.public_key.dump(), signature, message, SigScheme.parse(scheme))
    except SignatureError:
        raise PkiError(ErrorKind.UNAUTHORIZED, "the signature does not verify with the current certificate's "
                                               "key") from None


class Renewals:
    def __init__(self, ca: CertificateAuthority, clock: Clock | None = None, renew_before_days: int = 30) -> None:
        self.ca = ca
        self.clock = clock or ca.clock
        self.renew_before = timedelta(days=renew_before_days)

    def _current(self, serial: str) -> tuple[CertRecord, asn1x509.Certificate]:
        rec = self.ca.get(serial)
        problem = "is not a customer certificate" if rec.profile not in REQUESTABLE else \
            self.ca.unusable(rec, self.clock())
        if problem is not None:
            hint = {"is on hold": ": release it first", "is revoked": ": enroll again", "is expired": ": enroll again"}
            raise PkiError(ErrorKind.CONFLICT, f"certificate {rec.serial} {problem}{hint.get(problem, '')}")
        assert rec.der is not None
        return rec, asn1x509.Certificate.load(rec.der)

    @staticmethod
    def _same_subject(cert: asn1x509.Certificate, csr_der: bytes) -> None:
        wanted = names.rfc4514(cert.subject)
        asked = csr_subject(csr_der)
        if asked != wanted:
            raise PkiError(ErrorKind.POLICY, f"the CSR's subject {asked!r} is not the certificate's {wanted!r}")

    def _customer_of(self, serial: str) -> str | None:
        """The binding goes with the certificate to its renewal or re-key (ca.customers)."""
        return CustomerStore(self.ca.store).customer_of(serial)

    def renew(self, serial: str, csr_der: bytes, signature_b64: str, scheme: str) -> CertRecord:
        rec, cert = self._current(serial)
        _signed_by(cert, signature_b64, scheme, renew_message(rec.serial, csr_der))
        opens = rec.not_after - self.renew_before
        if self.clock() < opens:
            raise PkiError(ErrorKind.CONFLICT, f"certificate {rec.serial} can be renewed from {opens:%Y-%m-%d %H:%M}Z "
                                               f"(the last {self.renew_before.days} days of its validity)")
        if _csr_key(csr_der) != _spki(cert.public_key):
            raise PkiError(ErrorKind.POLICY, "a renewal keeps the key: this CSR is for another key (use re-key)")
        self._same_subject(cert, csr_der)
        later = self.ca.store.successor(rec.serial, spki_sha256(cert.public_key.dump()), rec.subject, rec.not_after)
        if later is not None:
            raise PkiError(ErrorKind.CONFLICT, f"certificate {rec.serial} was renewed already (by {later}): renew "
                                               "that one")
        return self.ca.issue(csr_der, rec.profile, requester=f"renewal:{rec.serial}",
                             customer=self._customer_of(rec.serial))

    def rekey(self, serial: str, csr_der: bytes, signature_b64: str, scheme: str) -> tuple[CertRecord, CertRecord]:
        """(the new certificate, the old one, now revoked as superseded)."""
        from ca.revocation import Revocation

        rec, cert = self._current(serial)
        _signed_by(cert, signature_b64, scheme, rekey_message(rec.serial, csr_der))
        if _csr_key(csr_der) == _spki(cert.public_key):
            raise PkiError(ErrorKind.POLICY, "a re-key needs a new key: this CSR is for the current one (use renew)")
        self._same_subject(cert, csr_der)
        new = self.ca.issue(csr_der, rec.profile, requester=f"rekey:{rec.serial}",
                            customer=self._customer_of(rec.serial))
        old = Revocation(self.ca).revoke(rec.serial, "superseded", actor=f"rekey:{new.serial}")
        return new, old
