"""Fixed test keys and certificates shared by the known-answer tests of pkicore.fastder
(tests/pkicore/test_fastder.py, tests/pkicore/test_ocsp_fastder.py).

Certificates are made with cryptography directly: fixed keys, names and validity give
fixed certificates, so recorded bytes stay valid from run to run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from cryptography.x509.oid import NameOID

from pkicore.algorithms import KeyType, SigScheme

VALID_FROM = datetime(2026, 1, 1, tzinfo=UTC)

# A test key recorded once, so that certificates and RSA PKCS#1 v1.5 tokens are the same every run.
KAT_RSA_KEY = b"""-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC5Z7yuQZ4G8q8e
enpq9xFaJok8Fpf2sEpa+EG6EWPFAYPJmexacVeAqgMWnlNFN9Wn9rKRFAMwIRK1
Be9wcKvOfVu9rEc91xopYpXgAlSFS3h9w61wo+X1R/qJMx7ZSblgXLLSU00hLVTJ
kR2O5tNSKGxd+l//Q3BXvJX73LskDBdlCSWihD6HIdR3IxNVVL6GbBKuSgnRrVXE
t6CTaVHBwSou3EYYJGDOS1d6lnqU1VgwfzvkeprJ0M9TbUbKwqNLcgk3DWoSBZir
d/Dc+Ujp5ajiw5F4F3JXW95Qfg4RrHHxs7C66A33+Hihmn7y1O93p62YnAA4VfD5
eVH1SDK1AgMBAAECggEAHDfQLTtaaFdOVNayRA5nay+bSnRr24VYQ8EuC7oy05yX
6LqPEPLYLQJzJuGg7dOCJqay5cbEd3JJLRkCqLvVQj+tE1ChpSVUW4EgK3BfWcwz
QfzirFadnLfAR1pq8wo39xUUuFMqVYbXNThrZcD237W8TI9bRfgHJKtUrnkZWHJm
VzaEmbtK+cM5iSgfO+PnSwVO1l8eQAbPjXBR3us91Ukq2WYY3HsTq64MzFYbAj8y
iN9k5Vvsi7w45/rZ1DNXDFJ38aQqILL2zeAiABDwjt+7ARnUnGfBsxkb4FwnrUoI
6IefnWSfMYcRiM1ImBQBUn916HpcIFLzDx3O5thpcQKBgQDd5rW9xmdisQxcQoie
F02ncr4BRF8/3EiLEAY49b2/8gcJG+EP5dCjuXa+ybtlIYOJKIxk5FLGymixwzgz
oCV4ckfq9hVYbx22QPX+VI5OwHVB63cIXQMPCEyc27aquKWloclS405k4csPs1P8
UehzG3JyQgCh7APWNE9ewqEgTQKBgQDV5VMqqr97hnbp4XtUHueh5zmM79p5svG+
ko+sIvKum3wrWfkqJQizp9LaDQKS9VKVk8AHODAYRsnLZyysobXJeCyjr4UoZGvA
4Bu5oKKATp7zGoq3rrk4uILQpP2XsaGOQF/O1XoNIG/UmcOHgjMeoUDpd5SDVCJH
rtnmJJ5QCQKBgEc7fm/zNtD5oMwlF5IYTPdJ4DCr8B+h6S+q7zRtvoHVgeisqGzg
Cz/jk3jfbWajgYQQHjFtEh16cG1QC8SWzjCCDxAf+u4ujU0qQU1pe11QbtPAcK+g
nBDBS0a3SUY4jARFkUkoasv7p6HcoUNIT+RTlUOUaHuSNhEXLbtvoyWpAoGBAJ7l
LiQbFgZAfKP/0itKjg5TBAizwZv4l+dXXw2kJJ4beWGHBDcPregwOs2rLodXYRMm
4Fc8oVXXeF729VQFCVNyR88NO6EnAHkWwuHh9/XS8fdsdzI+xO/i+aLfflerKHXR
UpsHMRUBTLIlzAAlc65EYkFNiPEKljCkLtDt0QFpAoGBAK/lMAb+hXIe5HeTrXNq
qk+iflsLHz2Xbc9lPT/cP8mLqHl2kXxRs0PeILm5FkGOiMVMVkzdrinI2jWdBD2E
JV8XRx2FnlFR+SW5a2saoGr+kzF+uk4xhrkrCdXJ+RCLcdZIG4K0kPNgZVUKIM+k
FeIJ0b/RYpvWHQQd0FIEh1PF
-----END PRIVATE KEY-----
"""


@dataclass
class Signer:
    """A RawSigner over a key in memory. ``memo``: the same digest gets the same signature
    (ECDSA signatures are random; a different digest still gets a new one)."""

    private: Any
    memo: dict[bytes, bytes] | None = None
    calls: list[bytes] = field(default_factory=list)

    @property
    def key_type(self) -> KeyType:
        return KeyType.EC_P256 if isinstance(self.private, ec.EllipticCurvePrivateKey) else KeyType.RSA_2048

    @property
    def public_key_der(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign_digest(self, digest: bytes, scheme: SigScheme) -> bytes:
        self.calls.append(digest)
        if self.memo is not None and digest in self.memo:
            return self.memo[digest]
        pre = utils.Prehashed(hashes.SHA256())
        if isinstance(self.private, ec.EllipticCurvePrivateKey):
            sig: bytes = self.private.sign(digest, ec.ECDSA(pre))
        elif scheme is SigScheme.RSA_PSS_SHA256:
            sig = self.private.sign(digest, padding.PSS(padding.MGF1(hashes.SHA256()), 32), pre)
        else:
            sig = self.private.sign(digest, padding.PKCS1v15(), pre)
        if self.memo is not None:
            self.memo[digest] = sig
        return sig


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "udun tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def root(key: Any, cn: str, serial: int) -> x509.Certificate:
    return (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn)).public_key(key.public_key())
            .serial_number(serial).not_valid_before(VALID_FROM).not_valid_after(VALID_FROM + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))



def kat_rsa_key() -> Any:
    return serialization.load_pem_private_key(KAT_RSA_KEY, None)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def delegated_cert(issuer_key: Any, issuer: x509.Certificate, key: Any, cn: str, serial: int,
                   purpose: x509.ObjectIdentifier, purpose_critical: bool) -> bytes:
    """An end-entity certificate for ``key`` with one extended key usage (a TSA's
    timeStamping, RFC 3161 §2.3; an OCSP responder's OCSPSigning, RFC 6960 §4.2.2.2)."""
    return der(x509.CertificateBuilder().subject_name(name(cn)).issuer_name(issuer.subject)
               .public_key(key.public_key()).serial_number(serial)
               .not_valid_before(VALID_FROM).not_valid_after(VALID_FROM + timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([purpose]), critical=purpose_critical)
               .sign(issuer_key, hashes.SHA256()))
