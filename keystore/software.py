"""A RawSigner over a key in memory: the software backend of the seam, for tests and tooling.

Never for a CA's or a customer's key (those are generated on a token and stay there):
it exists so that tests can play rogue CAs, foreign signers and partner TSAs, and tools
can sign throw-away structures, through exactly the code paths token keys take.
"""
from __future__ import annotations

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from pkicore.algorithms import KeyType, SigScheme, check_scheme


class SoftwareKey:
    """A fresh software key of ``key_type`` implementing pkicore.algorithms.RawSigner."""

    def __init__(self, key_type: KeyType = KeyType.EC_P256) -> None:
        self._key_type = key_type
        self.private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
        if key_type is KeyType.EC_P256:
            self.private = ec.generate_private_key(ec.SECP256R1())
        else:
            self.private = rsa.generate_private_key(65537, key_type.rsa_bits)

    @property
    def key_type(self) -> KeyType:
        return self._key_type

    @property
    def public_key_der(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign_digest(self, digest: bytes, scheme: SigScheme) -> bytes:
        check_scheme(self._key_type, scheme)
        pre = utils.Prehashed(hashes.SHA256())
        if isinstance(self.private, ec.EllipticCurvePrivateKey):
            return self.private.sign(digest, ec.ECDSA(pre))
        if scheme is SigScheme.RSA_PSS_SHA256:
            return self.private.sign(digest, padding.PSS(padding.MGF1(hashes.SHA256()), 32), pre)
        return self.private.sign(digest, padding.PKCS1v15(), pre)

    def pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted: for openssl in tests (a software key has nothing to protect)."""
        return self.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())
