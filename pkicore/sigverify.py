"""One signature check for everything udun verifies: certificates, CRLs, OCSP responses,
time-stamp tokens and CMS signatures.

pyhanko-certvalidator checks certificate, CRL and OCSP signatures through the
``SignatureValidator`` handed to its ValidationContext; ``VALIDATOR`` below is ours, so
the library and our own CMS/TSP code apply the same rules (one set of RSA-PSS rules
above all). Whether an algorithm is *strong enough* is a separate question answered by
``pkicore.algpolicy``; this module only says whether a signature holds.
"""
from __future__ import annotations

import enum
import logging
import threading
from dataclasses import dataclass
from typing import Any

from asn1crypto import algos, core, keys
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from pyhanko_certvalidator.errors import PSSParameterMismatch
from pyhanko_certvalidator.sig_validate import (DEFAULT_VALIDATION_CONTEXT, SignatureValidationContext,
                                                SignatureValidator)

from pkicore import oids
from pkicore.algorithms import SigScheme, signature_algorithm
from pkicore.algpolicy import STRICT, AlgorithmPolicy

# A failure's ``problem`` is udun's own words; what a library said goes to the server log only.
log = logging.getLogger("udun.verify")

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,        # legacy data only: pkicore.algpolicy refuses it unless told otherwise
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
ID_EC_PUBLIC_KEY = oids.ID_EC_PUBLIC_KEY
MAX_PSS_SALT = 512              # bytes; far above any real salt, bounds hostile parameters


class Failure(enum.Enum):
    """Why a signature does not hold."""

    INVALID = "invalid"             # the signature does not verify with the key
    KEY_MISMATCH = "key-mismatch"   # the algorithm does not fit the key
    MALFORMED = "malformed"         # the algorithm identifier breaks its RFC
    UNSUPPORTED = "unsupported"     # an algorithm or hash udun does not verify


class SignatureError(InvalidSignature):
    """A signature that does not hold, with why. An InvalidSignature, so that the
    validation library treats every failure of ours as a bad signature."""

    def __init__(self, failure: Failure, problem: str) -> None:
        super().__init__(problem)
        self.failure = failure
        self.problem = problem


@dataclass(frozen=True)
class SigAlgorithm:
    """A signature scheme with everything needed to check one."""

    kind: str                       # ecdsa | pkcs1 | pss | dsa
    hash_name: str
    mgf_hash: str | None = None     # pss only
    salt_length: int | None = None  # pss only


_NULL = b"\x05\x00"


def _hash(name: str | None, what: str) -> str:
    if name not in HASHES:
        raise SignatureError(Failure.UNSUPPORTED, f"unsupported {what} hash {name}")
    return name  # type: ignore[return-value]


def pss_algorithm(params: algos.RSASSAPSSParams | None) -> SigAlgorithm:
    """RSASSA-PSS parameters checked once for every use (RFC 4055 §3.1): MGF1 only,
    trailerField 1, a known hash for both the message and MGF1, a bounded salt."""
    if params is None or isinstance(params, (core.Void, core.Null)):
        raise SignatureError(Failure.MALFORMED, "RSA-PSS without parameters")
    try:
        hash_name = params["hash_algorithm"]["algorithm"].native
        mgf = params["mask_gen_algorithm"]
        mgf_name = mgf["algorithm"].native
        mgf_hash = mgf["parameters"]["algorithm"].native
        salt = params["salt_length"].native
        trailer = params["trailer_field"].native
    except (ValueError, TypeError, KeyError) as e:
        log.info("RSA-PSS parameters: %s: %s", type(e).__name__, e)
        raise SignatureError(Failure.MALFORMED, "malformed RSA-PSS parameters (RFC 4055 §3.1)") from None
    if mgf_name != "mgf1":
        raise SignatureError(Failure.UNSUPPORTED, f"unsupported PSS mask generation {mgf_name}")
    _hash(hash_name, "PSS")
    _hash(mgf_hash, "MGF1")
    if trailer != "trailer_field_bc" or not isinstance(salt, int) or not 0 <= salt <= MAX_PSS_SALT:
        raise SignatureError(Failure.MALFORMED, "malformed PSS parameters (RFC 4055 §3.1)")
    return SigAlgorithm("pss", hash_name, mgf_hash, salt)


def from_identifier(alg: algos.SignedDigestAlgorithm, digest_hint: str | None = None) -> SigAlgorithm:
    """The scheme an AlgorithmIdentifier names (RFC 5280 §4.1.1.2, RFC 4055, RFC 5758).

    ``digest_hint``: the digest the context implies (a CMS digestAlgorithm) for
    identifiers that do not name one, such as rsaEncryption.
    """
    try:
        name = alg["algorithm"].native
        params = alg["parameters"]
    except (ValueError, TypeError, KeyError) as e:
        log.info("signature algorithm identifier: %s: %s", type(e).__name__, e)
        raise SignatureError(Failure.MALFORMED, "malformed signature algorithm identifier (RFC 5280 §4.1.1.2)") \
            from None
    if name == "rsassa_pss":
        return pss_algorithm(params)
    try:
        kind = {"rsassa_pkcs1v15": "pkcs1", "ecdsa": "ecdsa", "dsa": "dsa"}.get(alg.signature_algo, "")
    except ValueError:
        # id-ecPublicKey as a signature algorithm: seen in CMS in the wild, the digest
        # algorithm then names the hash (as for rsaEncryption).
        kind = "ecdsa" if name == ID_EC_PUBLIC_KEY else ""
    if not kind:
        raise SignatureError(Failure.UNSUPPORTED, f"unsupported signature algorithm {name}")
    try:
        hash_name = alg.hash_algo
    except ValueError:
        hash_name = digest_hint
    raw_params = params.dump() if not isinstance(params, core.Void) else None
    if kind in ("ecdsa", "dsa") and raw_params is not None:
        # RFC 5758 §3.2 / RFC 3279 §2.2.2: the parameters are absent.
        raise SignatureError(Failure.MALFORMED, f"{kind.upper()} algorithm identifier with parameters")
    if kind == "pkcs1" and raw_params not in (None, _NULL):
        raise SignatureError(Failure.MALFORMED, "RSA algorithm identifier with parameters (RFC 4055 §5: NULL)")
    return SigAlgorithm(kind, _hash(hash_name, "signature"))


_by_identifier: dict[tuple[bytes, str | None], SigAlgorithm] = {}
_lock = threading.Lock()


def cached_identifier(alg_der: bytes, digest_hint: str | None = None) -> SigAlgorithm:
    """from_identifier for DER bytes, remembered (a verifier sees few distinct identifiers)."""
    key = (alg_der, digest_hint)
    hit = _by_identifier.get(key)
    if hit is not None:
        return hit
    alg = from_identifier(algos.SignedDigestAlgorithm.load(alg_der), digest_hint)
    with _lock:
        if len(_by_identifier) > 256:
            _by_identifier.clear()
        _by_identifier[key] = alg
    return alg


def verify(public_key: Any, signature: bytes, data: bytes, alg: SigAlgorithm) -> None:
    """Check ``signature`` over ``data`` (hashed here) with a cryptography public key;
    raises SignatureError."""
    h = HASHES[alg.hash_name]()
    try:
        if alg.kind == "ecdsa":
            if not isinstance(public_key, ec.EllipticCurvePublicKey):
                raise SignatureError(Failure.KEY_MISMATCH, "an ECDSA signature but the key is not an EC key")
            public_key.verify(signature, data, ec.ECDSA(h))
        elif alg.kind == "pkcs1":
            if not isinstance(public_key, rsa.RSAPublicKey):
                raise SignatureError(Failure.KEY_MISMATCH, "an RSA signature but the key is not an RSA key")
            public_key.verify(signature, data, padding.PKCS1v15(), h)
        elif alg.kind == "pss":
            if not isinstance(public_key, rsa.RSAPublicKey):
                raise SignatureError(Failure.KEY_MISMATCH, "an RSA-PSS signature but the key is not an RSA key")
            assert alg.mgf_hash is not None and alg.salt_length is not None
            pss = padding.PSS(mgf=padding.MGF1(HASHES[alg.mgf_hash]()), salt_length=alg.salt_length)
            public_key.verify(signature, data, pss, h)
        elif alg.kind == "dsa":
            if not isinstance(public_key, dsa.DSAPublicKey):
                raise SignatureError(Failure.KEY_MISMATCH, "a DSA signature but the key is not a DSA key")
            public_key.verify(signature, data, h)
        else:
            raise SignatureError(Failure.UNSUPPORTED, f"unsupported signature kind {alg.kind}")
    except SignatureError:
        raise
    except InvalidSignature:
        raise SignatureError(Failure.INVALID, "the signature does not verify with the public key") from None
    except (ValueError, TypeError, OverflowError, UnsupportedAlgorithm) as e:
        log.info("%s signature check: %s: %s", alg.kind, type(e).__name__, e)
        raise SignatureError(Failure.MALFORMED, "malformed signature value or algorithm parameters") from None


_keys: dict[bytes, Any] = {}


def load_key(spki_der: bytes) -> Any:
    """A cryptography public key from SubjectPublicKeyInfo DER, remembered per DER."""
    key = _keys.get(spki_der)
    if key is None:
        try:
            key = serialization.load_der_public_key(spki_der)
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            log.info("public key: %s: %s", type(e).__name__, e)
            raise SignatureError(Failure.UNSUPPORTED, "the public key does not read or is of an unsupported kind") \
                from None
        with _lock:
            if len(_keys) > 4096:
                _keys.clear()
            _keys[spki_der] = key
    return key


def verify_scheme(spki_der: bytes, signature: bytes, data: bytes, scheme: SigScheme) -> None:
    """verify() of a raw signature made by one of udun's schemes (a token's login, renewal or
    re-key signature) with a SubjectPublicKeyInfo."""
    verify(load_key(spki_der), signature, data, cached_identifier(signature_algorithm(scheme).dump()))


def verify_info(key_info: keys.PublicKeyInfo, signature: bytes, data: bytes,
                alg_identifier: algos.SignedDigestAlgorithm, digest_hint: str | None = None) -> None:
    """verify() for asn1crypto inputs: a certificate's key and an AlgorithmIdentifier."""
    alg = cached_identifier(alg_identifier.dump(), digest_hint)
    if key_info.algorithm == "rsassa_pss":
        # A PSS-only key (RFC 4055 §1.2): its parameters, when present, bind the signature's.
        key_params = key_info["algorithm"]["parameters"]
        if not isinstance(key_params, core.Void) and key_params.native is not None \
                and key_params.native != alg_identifier["parameters"].native:
            raise PSSParameterMismatch("the PSS key's parameters differ from the signature's")
        key_info = key_info.copy()
        key_info["algorithm"] = {"algorithm": "rsa"}
    if alg.kind == "dsa" and key_info["algorithm"]["parameters"].native is None:
        raise SignatureError(Failure.MALFORMED, "DSA key without parameters (none inherited)")
    verify(load_key(key_info.dump()), signature, data, alg)


class UdunSignatureValidator(SignatureValidator):
    """The library's signature seam, answered by verify_info (for X.509, CRL and OCSP).

    The library asks its algorithm policy about certificate and OCSP signatures but not
    about CRLs, and never about the key of a CRL signer or OCSP responder, so the hash and
    key rules of ``policy`` are applied here to every signature.
    """

    def __init__(self, policy: AlgorithmPolicy = STRICT) -> None:
        self.policy = policy
        # DSA keys may inherit their parameters from the issuer (RFC 3279 §2.3.2, RFC 5280
        # §6.1.4(f)). The library hands the inherited parameters along for certificate
        # signatures but checks a CRL against the issuer certificate's bare key, which then
        # cannot verify (PKITS 4.1.5). The parameters seen with a key on the path are kept
        # here, per validation, and lent to the same key when it comes without them.
        self._dsa_params: dict[bytes, Any] = {}

    def validate_signature(self, signature: bytes, signed_data: bytes, public_key_info: keys.PublicKeyInfo,
                           signature_algorithm: algos.SignedDigestAlgorithm,
                           context: SignatureValidationContext = DEFAULT_VALIDATION_CONTEXT) -> None:
        if context.prehashed:
            raise SignatureError(Failure.UNSUPPORTED, "pre-hashed signatures are not checked here")
        alg = cached_identifier(signature_algorithm.dump(), context.contextual_md_algorithm)
        problem = self.policy.hash_problem(alg.hash_name)
        if problem:
            raise SignatureError(Failure.UNSUPPORTED, problem)
        if public_key_info.algorithm == "dsa":
            public_key_info = self._dsa_with_params(public_key_info)
        # The library asks its policy about keys that sign certificates, not about CRL
        # signers or OCSP responders: the key rule is applied here to every signature.
        try:
            problem = self.policy.key_problem(public_key_info)
        except (ValueError, TypeError, KeyError):
            problem = "the signing key does not read"
        if problem:
            raise SignatureError(Failure.UNSUPPORTED, problem)
        verify_info(public_key_info, signature, signed_data, signature_algorithm, context.contextual_md_algorithm)

    def _dsa_with_params(self, key_info: keys.PublicKeyInfo) -> keys.PublicKeyInfo:
        if not self.policy.allow_weak:
            return key_info                 # DSA is refused anyway: remember nothing
        bits = key_info["public_key"].dump()
        params = key_info["algorithm"]["parameters"]
        if params.native is not None:
            self._dsa_params.setdefault(bits, params)       # the first seen (the path's) stays
            return key_info
        known = self._dsa_params.get(bits)
        if known is None:
            return key_info
        return keys.PublicKeyInfo({"algorithm": {"algorithm": "dsa", "parameters": known},
                                   "public_key": key_info["public_key"]})


VALIDATOR = UdunSignatureValidator(STRICT)
