"""In-process figures: token signing (udun vs raw python-pkcs11), CMS verify, issuance."""
from __future__ import annotations

import hashlib
from typing import Any, Callable

from bench.measure import Tally, batch_for, interleaved, log, timed

# DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1), what CKM_RSA_PKCS signs raw.
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")

Figure = tuple[str, float, str]


def _check_signature(public_key_der: bytes, signature: bytes, payload: bytes, rsa: bool) -> None:
    """Both paths must produce a signature that verifies, or the rates mean nothing."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding

    pub: Any = serialization.load_der_public_key(public_key_der)
    if rsa:
        pub.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
    else:
        pub.verify(signature, payload, ec.ECDSA(hashes.SHA256()))


def token_sign(key: Any, name: str, payload: bytes, seconds_each: float, rounds: int) -> list[Figure]:
    """Signatures/s: pkicore.algorithms.sign through TokenKey vs private.sign on the same key.

    The raw call gets a precomputed digest (or DigestInfo||digest for RSA); udun's path
    hashes the payload, checks the scheme and DER-encodes ECDSA signatures on top.
    """
    from pkcs11 import Mechanism
    from pkcs11.util.ec import encode_ecdsa_signature

    from pkicore.algorithms import KeyType, sign

    rsa = key.key_type is not KeyType.EC_P256
    private = key._private   # the python-pkcs11 object behind the seam, same session
    digest = hashlib.sha256(payload).digest()

    def udun() -> object:
        return sign(key, payload)

    raw: Callable[[], object]
    if rsa:
        block = SHA256_DIGEST_INFO + digest

        def raw() -> object:
            return private.sign(block, mechanism=Mechanism.RSA_PKCS)
        raw_sig = bytes(private.sign(block, mechanism=Mechanism.RSA_PKCS))
    else:
        def raw() -> object:
            return private.sign(digest, mechanism=Mechanism.ECDSA)
        raw_sig = bytes(encode_ecdsa_signature(private.sign(digest, mechanism=Mechanism.ECDSA)))
    _check_signature(key.public_key_der, sign(key, payload)[0], payload, rsa)
    _check_signature(key.public_key_der, raw_sig, payload, rsa)

    t = interleaved({"udun": udun, "raw": raw}, seconds_each, rounds)
    u, r = t["udun"].rate, t["raw"].rate
    log(f"{name}: udun {t['udun'].ops} sigs in {t['udun'].seconds:.1f}s, raw {t['raw'].ops} in {t['raw'].seconds:.1f}s")
    return [
        (f"token_sign_{name}_udun", u, "sig/s"),
        (f"token_sign_{name}_raw", r, "sig/s"),
        (f"token_sign_{name}_ratio", u / r if r else 0.0, "ratio"),
    ]


def cms_verify(ca: Any, chain_der: list[bytes], cms_der: bytes, seconds: float) -> list[Figure]:
    """Verifications/s of one attached P-256 CMS by one Verifier, warm caches, one thread,
    with the status now of every certificate below the anchor (the signer from the OCSP
    responder in-process, the issuing CA from the root's CRL), as the API does."""
    from ca.ocsp import Responder, status_source
    from pkicore.cms_verify import Verifier
    from pkicore.pathval import ChainValidator, TrustStore

    verifier = Verifier(ChainValidator(TrustStore.from_certs(chain_der)), status=status_source(Responder(ca)))
    first = verifier.verify(cms_der)   # validates the chain once; later calls hit the cache
    if not first.passed:
        raise RuntimeError(f"the sample payment does not verify: {first.status.value} "
                           f"{first.sub_indication.value if first.sub_indication else ''} {first.message}")
    if [st["status"] for st in first.statuses] != ["good", "good"]:
        raise RuntimeError(f"status not checked for the signer and the issuing CA: {first.statuses}")
    bad = 0

    def one() -> None:
        nonlocal bad
        if not verifier.verify(cms_der).passed:
            bad += 1

    tally = timed(one, seconds, batch_for(one))
    if bad:
        raise RuntimeError(f"{bad} of {tally.ops} verifications did not pass")
    log(f"cms verify: {tally.ops} in {tally.seconds:.1f}s")
    return [("cms_verify_inprocess", tally.rate, "verify/s")]


def openssl_speed(seconds: int) -> list[Figure]:
    """`openssl speed` ECDSA P-256 sign and verify on one core: the machine's yardstick, so
    that figures from runs on a busier or another machine can be compared as ratios."""
    import re
    import subprocess

    out = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "ecdsap256"], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", out)
    if m is None:
        raise RuntimeError(f"cannot read openssl speed output: {out[-300:]!r}")
    log(f"openssl speed ecdsap256: {m.group(1)} sign/s, {m.group(2)} verify/s")
    return [("openssl_ecdsap256_sign", float(m.group(1)), "sig/s"),
            ("openssl_ecdsap256_verify", float(m.group(2)), "verify/s")]


def issuance(ca: Any, csr_der: bytes, seconds: float) -> list[Figure]:
    """Certificates/s through ca.issue (policy, TBS, lint, intent row, token sign, store)."""
    serials: set[str] = set()

    def one() -> None:
        serials.add(ca.issue(csr_der, "client", requester="bench").serial)

    one()   # warm-up (imports, first statements prepared)
    serials.clear()
    tally: Tally = timed(one, seconds)
    if len(serials) != tally.ops:
        raise RuntimeError(f"{tally.ops} issuances gave only {len(serials)} distinct serials")
    log(f"issuance: {tally.ops} certificates in {tally.seconds:.1f}s")
    return [("issuance", tally.rate, "cert/s")]


def tsa_tokens(ca: Any, seconds_each: float, rounds: int) -> list[Figure]:
    """Time-stamp tokens/s in process with the CA's delegated TSA key (online token, P-256):
    pkicore.fastder's fast path (what `udun serve` answers with) against the asn1crypto
    declarative builder it is tested against, alternating; both include the token signature.
    Why pkicore.fastder exists: the gap between these two figures."""
    import secrets

    from ca.delegated import DelegatedKey
    from pkicore import tsp

    d = DelegatedKey(ca, "tsa", "TSA").current()
    factory = tsp.TokenFactory(d.key, d.scheme, d.cert.dump(), ca.chain_der(), ca.settings.tsa_policy)
    imprint = hashlib.sha256(b"bench").digest()

    def request() -> dict[str, Any]:
        return {"hash_name": "sha256", "imprint": imprint, "serial": secrets.randbits(120) | 1,
                "gen_time": _now(), "nonce": secrets.randbits(64), "cert_req": True}

    for build in (factory.token, factory.reference_token):      # both make tokens that check out
        kw = request()
        check = tsp.check_token(build(**kw), imprint=imprint, hash_name="sha256", nonce=kw["nonce"])
        if not check.ok:
            raise RuntimeError(f"{build.__name__} made a token that does not check: {check.problem}")
    t = interleaved({"fast": lambda: factory.token(**request()),
                     "reference": lambda: factory.reference_token(**request())}, seconds_each, rounds)
    f, r = t["fast"].rate, t["reference"].rate
    log(f"TSA tokens: fast path {t['fast'].ops} in {t['fast'].seconds:.1f}s, "
        f"asn1crypto {t['reference'].ops} in {t['reference'].seconds:.1f}s")
    return [("tsa_token_fastder", f, "tokens/s"), ("tsa_token_asn1crypto", r, "tokens/s"),
            ("tsa_token_fastder_speedup", f / r if r else 0.0, "ratio")]


def ocsp_answers(ca: Any, seconds_each: float, rounds: int) -> list[Figure]:
    """Nonced OCSP answers/s in process with the CA's delegated responder key (online token,
    P-256): pkicore.fastder's fast path (what the responder sends) against cryptography's
    OCSPResponseBuilder it is tested against, alternating; both include the token signature.
    Why the OCSP part of pkicore.fastder exists: the gap between these two figures."""
    import os
    import secrets

    from asn1crypto import x509 as asn1x509
    from cryptography.x509 import ocsp as cocsp

    from ca.delegated import DelegatedKey
    from pkicore import ocsp

    d = DelegatedKey(ca, "ocsp", "OCSP responder").current()
    issuing = ca.chain_der()[0]
    factory = ocsp.ResponseFactory(d.key, d.scheme, d.cert.dump(), [issuing])
    name_hash, key_hash = ocsp.issuer_hashes(asn1x509.Certificate.load(issuing), "sha1")

    def answer() -> ocsp.Answer:
        return ocsp.Answer(ocsp.CertQuery("sha1", name_hash, key_hash, secrets.randbits(120) | 1), "good")

    def fast() -> bytes:
        now = _now().replace(microsecond=0)
        return factory.response(answer(), os.urandom(16), now, now, produced_at=now)

    def reference() -> bytes:
        now = _now().replace(microsecond=0)
        return factory.reference_response(answer(), os.urandom(16), now, now)

    for build in (fast, reference):      # both make answers that parse and carry a nonce
        if cocsp.load_der_ocsp_response(build()).response_status is not cocsp.OCSPResponseStatus.SUCCESSFUL:
            raise RuntimeError(f"{build.__name__} made an unsuccessful OCSP answer")
    t = interleaved({"fast": fast, "reference": reference}, seconds_each, rounds)
    f, r = t["fast"].rate, t["reference"].rate
    log(f"OCSP answers: fast path {t['fast'].ops} in {t['fast'].seconds:.1f}s, "
        f"builder {t['reference'].ops} in {t['reference'].seconds:.1f}s")
    return [("ocsp_answer_fastder", f, "resp/s"), ("ocsp_answer_builder", r, "resp/s"),
            ("ocsp_answer_fastder_speedup", f / r if r else 0.0, "ratio")]


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
