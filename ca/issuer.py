"""The issuer: signs what policy prepared and lint accepted, nothing else."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import x509
from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature

from pkicore.algorithms import RawSigner, SigScheme, default_scheme
from pkicore.errors import ErrorKind, PkiError
from pkicore.x509build import sign_tbs

_SIGNATURE_ALGORITHMS = ("sha256_ecdsa", "sha256_rsa", "rsassa_pss")


@dataclass(frozen=True)
class Prepared:
    """A TBS certificate (DER) waiting to be signed, with the facts the store records."""

    tbs: bytes
    serial: int
    not_before: datetime
    not_after: datetime

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")

    @property
    def tbs_sha256(self) -> str:
        return hashlib.sha256(self.tbs).hexdigest()


def lint(tbs_der: bytes, issuer_cert: x509.Certificate) -> None:
    """Pre-signing checks on the bytes about to be signed (RFC 5280); pkilint runs in tests."""
    def bad(why: str) -> PkiError:
        return PkiError(ErrorKind.INTERNAL, f"lint: {why}")

    try:
        tbs = x509.TbsCertificate.load(tbs_der, strict=True)
        serial = tbs["serial_number"].native
        serial_octets = len(tbs["serial_number"].contents)
        validity = tbs["validity"]
        nb, na = validity["not_before"].native, validity["not_after"].native
        issuer_der = tbs["issuer"].dump()
        exts = tbs["extensions"]
        ids = [e["extn_id"].dotted for e in exts]
        aki = next((e["extn_value"].parsed for e in exts if e["extn_id"].native == "authority_key_identifier"), None)
        algorithm = tbs["signature"]["algorithm"].native
    except PkiError:
        raise
    except Exception as e:  # the assembler produced something asn1crypto cannot read
        raise bad(f"the TBS certificate does not parse ({e})") from e
    if tbs["version"].native != "v3":
        raise bad("version must be v3")
    if serial <= 0 or serial_octets > 20:
        raise bad("serial must be positive and at most 20 octets (§4.1.2.2)")
    if not nb < na:
        raise bad("notBefore must precede notAfter")
    if issuer_der != issuer_cert.subject.dump():
        raise bad("issuer name differs from the CA subject (§4.1.2.4)")
    if na > issuer_cert["tbs_certificate"]["validity"]["not_after"].native:
        raise bad("validity outlasts the issuing CA")
    if len(ids) != len(set(ids)):
        raise bad("duplicate extension (§4.2)")
    if aki is None or aki["key_identifier"].native != issuer_cert.key_identifier:
        raise bad("AKI must match the issuer's SKI (§4.2.1.1)")
    if algorithm not in _SIGNATURE_ALGORITHMS:
        raise bad("unexpected signature algorithm")


class Issuer:
    """Signs prepared certificates with one CA key."""

    def __init__(self, key: RawSigner, cert_der: bytes, scheme: SigScheme | None = None) -> None:
        self.key = key
        self.cert = x509.Certificate.load(cert_der)
        self.scheme = scheme or default_scheme(key.key_type)
        self._crypto_cert = cx509.load_der_x509_certificate(cert_der)

    def sign(self, prepared: Prepared) -> bytes:
        """Sign, then check the signature with the CA certificate before anyone sees it:
        a token fault or a stale key handle must never produce a bad certificate."""
        der = sign_tbs(self.key, prepared.tbs, self.scheme)
        try:
            cx509.load_der_x509_certificate(der).verify_directly_issued_by(self._crypto_cert)
        except (ValueError, TypeError, InvalidSignature) as e:
            raise PkiError(ErrorKind.TOKEN, "the token produced a signature that does not verify") from e
        return der
