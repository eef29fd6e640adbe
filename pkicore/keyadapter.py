"""A RawSigner as a cryptography private key, so that cryptography's builders sign on tokens.

cryptography's X.509, CSR, CRL and OCSP builders take a private key object and call its
``sign(data, ...)``; they accept any subclass of its abstract key classes. The adapter
hashes ``data`` on the host and signs the digest through the RawSigner seam, so the same
builders serve SoftHSM, a USB key and the software keys of tests. Nothing else of a
private key is offered: the key stays where it is (private_bytes and private_numbers
refuse).

``only`` pins the adapter to one to-be-signed structure: issuance records the TBS hash of
a certificate before signing it, and the adapter refuses to sign any other bytes.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable, NoReturn

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as pad
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from pkicore.algorithms import RawSigner, SigScheme, check_scheme, default_scheme
from pkicore.errors import ErrorKind, PkiError

# RFC 4055 §3.1 as udun writes it (pkicore.algorithms.PSS_PARAMS): MGF1-SHA256, salt 32.
PSS = pad.PSS(mgf=pad.MGF1(hashes.SHA256()), salt_length=32)


def builder_args(scheme: SigScheme) -> dict[str, Any]:
    """Keyword arguments for a builder's sign(): the hash, and the RSA padding for PSS."""
    if scheme is SigScheme.RSA_PSS_SHA256:
        return {"algorithm": hashes.SHA256(), "rsa_padding": PSS}
    return {"algorithm": hashes.SHA256()}


def _stays_on_token() -> NoReturn:
    raise PkiError(ErrorKind.UNSUPPORTED, "the private key stays on its token")


class _Captured(Exception):
    """Carries the to-be-signed bytes out of a builder that was only asked for them."""

    def __init__(self, data: bytes) -> None:
        super().__init__("to-be-signed bytes captured")
        self.data = data


class _Seam:
    """What both adapters share: the signer, the scheme, the one TBS allowed."""

    def __init__(self, signer: RawSigner, scheme: SigScheme, only: bytes | None, capture: bool = False) -> None:
        check_scheme(signer.key_type, scheme)
        self._signer = signer
        self._scheme = scheme
        self._only = only
        self._capture = capture
        self._public = serialization.load_der_public_key(signer.public_key_der)

    def _sign(self, data: bytes, algorithm: object, scheme: SigScheme) -> bytes:
        if not isinstance(algorithm, hashes.SHA256):
            raise PkiError(ErrorKind.INTERNAL, "udun signs with SHA-256 only")
        if scheme is not self._scheme:
            raise PkiError(ErrorKind.INTERNAL, f"asked for {scheme.value}, the key signs with {self._scheme.value}")
        if self._capture:
            raise _Captured(data)
        digest = hashlib.sha256(data).digest()
        if self._only is not None and digest != self._only:
            raise PkiError(ErrorKind.INTERNAL, "refused to sign bytes other than the recorded TBS")
        return self._signer.sign_digest(digest, scheme)


class _EcKey(_Seam, ec.EllipticCurvePrivateKey):
    def sign(self, data: Any, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise PkiError(ErrorKind.INTERNAL, "EC keys sign with ECDSA")
        return self._sign(bytes(data), signature_algorithm.algorithm, SigScheme.ECDSA_SHA256)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        assert isinstance(self._public, ec.EllipticCurvePublicKey)
        return self._public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self.public_key().curve

    @property
    def key_size(self) -> int:
        return self.public_key().key_size

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        _stays_on_token()

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        _stays_on_token()

    def private_bytes(self, encoding: serialization.Encoding, format: serialization.PrivateFormat,
                      encryption_algorithm: serialization.KeySerializationEncryption) -> bytes:
        _stays_on_token()

    def __copy__(self) -> "_EcKey":
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> "_EcKey":
        return self


class _RsaKey(_Seam, rsa.RSAPrivateKey):
    def sign(self, data: Any, padding: pad.AsymmetricPadding, algorithm: Any) -> bytes:
        if isinstance(padding, pad.PKCS1v15):
            scheme = SigScheme.RSA_PKCS1_SHA256
        elif padding is PSS:        # builder_args' object, handed back by the builder
            scheme = SigScheme.RSA_PSS_SHA256
        else:
            raise PkiError(ErrorKind.INTERNAL, "RSA signs with PKCS#1 v1.5 or PSS (MGF1-SHA256, salt 32)")
        return self._sign(bytes(data), algorithm, scheme)

    def public_key(self) -> rsa.RSAPublicKey:
        assert isinstance(self._public, rsa.RSAPublicKey)
        return self._public

    @property
    def key_size(self) -> int:
        return self.public_key().key_size

    def decrypt(self, ciphertext: bytes, padding: pad.AsymmetricPadding) -> bytes:
        _stays_on_token()

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        _stays_on_token()

    def private_bytes(self, encoding: serialization.Encoding, format: serialization.PrivateFormat,
                      encryption_algorithm: serialization.KeySerializationEncryption) -> bytes:
        _stays_on_token()

    def __copy__(self) -> "_RsaKey":
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> "_RsaKey":
        return self


def private_key(signer: RawSigner, scheme: SigScheme | None = None, *,
                only: bytes | None = None) -> CertificateIssuerPrivateKeyTypes:
    """``signer`` as a cryptography private key signing with ``scheme``.

    ``only``: the SHA-256 digest of the one to-be-signed structure the key may sign.
    """
    scheme = scheme or default_scheme(signer.key_type)
    if signer.key_type.is_rsa:
        return _RsaKey(signer, scheme, only)
    return _EcKey(signer, scheme, only)


def to_be_signed(sign: Callable[[CertificateIssuerPrivateKeyTypes], object], signer: RawSigner,
                 scheme: SigScheme | None = None) -> bytes:
    """The exact bytes ``sign(key)`` (a builder's sign) would have the key sign, unsigned.

    The builder runs with a key that keeps the bytes and stops it before any signature, so
    they can be linted and recorded first (Boulder's lint-then-sign); signing the same
    builder again later yields the same bytes, which ``private_key(only=...)`` enforces.
    """
    scheme = scheme or default_scheme(signer.key_type)
    key = (_RsaKey if signer.key_type.is_rsa else _EcKey)(signer, scheme, None, capture=True)
    try:
        sign(key)
    except _Captured as done:
        return done.data
    raise PkiError(ErrorKind.INTERNAL, "the builder signed nothing")
