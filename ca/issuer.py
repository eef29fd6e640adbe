"""The issuer: signs what policy prepared and lint accepted, nothing else."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import x509

from pkicore.algorithms import RawSigner, SigScheme, default_scheme
from pkicore.errors import ErrorKind, PkiError
from pkicore.x509build import sign_tbs


@dataclass(frozen=True)
class Prepared:
    """A TBS certificate waiting to be signed, with the facts the store records."""

    tbs: x509.TbsCertificate
    serial: int
    not_before: datetime
    not_after: datetime

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")

    @property
    def tbs_sha256(self) -> str:
        return hashlib.sha256(self.tbs.dump()).hexdigest()


def lint(tbs: x509.TbsCertificate, issuer_cert: x509.Certificate) -> None:
    """Cheap pre-signing checks (RFC 5280); pkilint runs in the test suite on top."""
    serial = tbs["serial_number"].native
    if serial <= 0 or len(tbs["serial_number"].contents) > 20:
        raise PkiError(ErrorKind.INTERNAL, "lint: serial must be positive and at most 20 octets (§4.1.2.2)")
    validity = tbs["validity"]
    nb, na = validity["not_before"].native, validity["not_after"].native
    if not nb < na:
        raise PkiError(ErrorKind.INTERNAL, "lint: notBefore must precede notAfter")
    if tbs["issuer"] != issuer_cert.subject:
        raise PkiError(ErrorKind.INTERNAL, "lint: issuer name differs from the CA subject (§4.1.2.4)")
    if na > issuer_cert["tbs_certificate"]["validity"]["not_after"].native:
        raise PkiError(ErrorKind.INTERNAL, "lint: validity outlasts the issuing CA")
    ids = [e["extn_id"].dotted for e in tbs["extensions"]]
    if len(ids) != len(set(ids)):
        raise PkiError(ErrorKind.INTERNAL, "lint: duplicate extension (§4.2)")
    aki = next((e["extn_value"].parsed for e in tbs["extensions"] if e["extn_id"].native == "authority_key_identifier"), None)
    if aki is None or aki["key_identifier"].native != issuer_cert.key_identifier:
        raise PkiError(ErrorKind.INTERNAL, "lint: AKI must match the issuer's SKI (§4.2.1.1)")
    if tbs["signature"]["algorithm"].native not in ("sha256_ecdsa", "sha256_rsa", "rsassa_pss"):
        raise PkiError(ErrorKind.INTERNAL, "lint: unexpected signature algorithm")


class Issuer:
    """Signs prepared certificates with one CA key."""

    def __init__(self, key: RawSigner, cert_der: bytes, scheme: SigScheme | None = None) -> None:
        self.key = key
        self.cert = x509.Certificate.load(cert_der)
        self.scheme = scheme or default_scheme(key.key_type)

    def sign(self, prepared: Prepared) -> bytes:
        return sign_tbs(self.key, prepared.tbs, self.scheme)
