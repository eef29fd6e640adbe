"""Key types, signature schemes and the one raw-sign seam every key backend implements.

The X.509 and CMS builders only ever see a ``RawSigner``: they never know whether the
key lives in SoftHSM, a USB key or (in tests) software (pyHanko's ``Signer`` model).
"""
from __future__ import annotations

import enum
import hashlib
from typing import Protocol

from asn1crypto import algos, core

from pkicore.errors import ErrorKind, PkiError


class KeyType(enum.Enum):
    """Key types udun generates and accepts."""

    EC_P256 = "ec-p256"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"

    @property
    def is_rsa(self) -> bool:
        return self is not KeyType.EC_P256

    @property
    def rsa_bits(self) -> int:
        return {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072}.get(self, 0)

    @classmethod
    def parse(cls, text: str) -> "KeyType":
        try:
            return cls(text)
        except ValueError:
            choices = ", ".join(k.value for k in cls)
            raise PkiError(ErrorKind.UNSUPPORTED, f"key type {text!r}: use one of {choices}") from None


class SigScheme(enum.Enum):
    """Signature schemes, all over SHA-256."""

    ECDSA_SHA256 = "ecdsa"          # RFC 5758 ecdsa-with-SHA256
    RSA_PKCS1_SHA256 = "pkcs1"      # RFC 4055 sha256WithRSAEncryption
    RSA_PSS_SHA256 = "pss"          # RFC 4055 RSASSA-PSS, MGF1-SHA256, salt 32

    @classmethod
    def parse(cls, text: str) -> "SigScheme":
        try:
            return cls(text)
        except ValueError:
            raise PkiError(ErrorKind.UNSUPPORTED, f"signature scheme {text!r}: use ecdsa, pkcs1 or pss") from None


def default_scheme(key_type: KeyType) -> SigScheme:
    return SigScheme.ECDSA_SHA256 if key_type is KeyType.EC_P256 else SigScheme.RSA_PKCS1_SHA256


def check_scheme(key_type: KeyType, scheme: SigScheme) -> None:
    """Refuse a scheme that cannot work with the key (ECDSA on RSA and vice versa)."""
    if key_type.is_rsa == (scheme is SigScheme.ECDSA_SHA256):
        raise PkiError(ErrorKind.UNSUPPORTED, f"scheme {scheme.value} does not fit a {key_type.value} key")


PSS_PARAMS = {
    "hash_algorithm": {"algorithm": "sha256"},
    "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
    "salt_length": 32,
    "trailer_field": "trailer_field_bc",
}


def signature_algorithm(scheme: SigScheme) -> algos.SignedDigestAlgorithm:
    """The AlgorithmIdentifier written into certificates, CSRs and CMS."""
    if scheme is SigScheme.ECDSA_SHA256:
        # RFC 5758 §3.2: parameters absent.
        return algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
    if scheme is SigScheme.RSA_PKCS1_SHA256:
        # RFC 4055 §5: parameters NULL.
        return algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa", "parameters": core.Null()})
    return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pss", "parameters": PSS_PARAMS})


class RawSigner(Protocol):
    """The seam: sign a SHA-256 digest with a key held somewhere else."""

    @property
    def key_type(self) -> KeyType: ...

    @property
    def public_key_der(self) -> bytes:
        """SubjectPublicKeyInfo, DER."""
        ...

    def sign_digest(self, digest: bytes, scheme: SigScheme) -> bytes:
        """Sign a 32-byte SHA-256 digest; ECDSA answers in DER (RFC 3279 Ecdsa-Sig-Value)."""
        ...


def sign(signer: RawSigner, data: bytes, scheme: SigScheme | None = None) -> tuple[bytes, SigScheme]:
    """Hash on the host, then sign through the seam."""
    scheme = scheme or default_scheme(signer.key_type)
    check_scheme(signer.key_type, scheme)
    return signer.sign_digest(hashlib.sha256(data).digest(), scheme), scheme
