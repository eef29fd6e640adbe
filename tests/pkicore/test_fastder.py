"""pkicore.fastder (the per-token DER fast path) against the asn1crypto reference builder.

Known-answer tests: for every shape of token, TokenFactory.token (pkicore.fastder) gives byte
for byte what TokenFactory.reference_token (asn1crypto's declarative types) gives, and fixed
bytes recorded once notice a change in both at the same time. The signatures are made equal
by a deterministic signer (RSA PKCS#1 v1.5) or, for ECDSA, by answering the same digest with
the same signature (so different bytes still give different signatures).

Certificates are made here with cryptography directly: fixed keys, names and validity give
fixed certificates. `python tests/pkicore/test_fastder.py` prints the figures that
pkicore.fastder's docstring cites.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms, core, pem
from asn1crypto import tsp as asn1tsp
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # tests/helpers.py when run as a script
from helpers import openssl, write  # noqa: E402
import katkeys  # noqa: E402
from katkeys import Signer, kat_rsa_key  # noqa: E402
from katkeys import der as _der  # noqa: E402

from pkicore import fastder, tsp  # noqa: E402
from pkicore.algorithms import KeyType, SigScheme, default_scheme  # noqa: E402
from pkicore.errors import PkiError  # noqa: E402

POLICY = "1.3.6.1.4.1.99999.1.1"
OTHER_POLICY = "1.3.6.1.4.1.99999.1.2"
WHEN = datetime(2026, 11, 22, 10, 0, 0, 250_000, tzinfo=UTC)



def _tsa_cert(root_key: Any, root: x509.Certificate, key: Any) -> bytes:
    """A TSA certificate: timeStamping the only, critical, extended key usage (RFC 3161 §2.3)."""
    return katkeys.delegated_cert(root_key, root, key, "Test TSA", 0x0FEDCBA987654321,
                                  ExtendedKeyUsageOID.TIME_STAMPING, purpose_critical=True)


@dataclass(frozen=True)
class Tsa:
    signer: Signer
    cert: bytes
    root: bytes
    chain: list[bytes]           # the root and a second CA certificate: a CertificateSet to sort


def _tsa(key: Any) -> Tsa:
    root_key = kat_rsa_key()
    root = katkeys.root(root_key, "TSA Test Root", 0x1234567890ABCDEF)
    other = katkeys.root(root_key, "Another CA", 0x42)
    return Tsa(Signer(key, memo={}), _tsa_cert(root_key, root, key), _der(root), [_der(root), _der(other)])


@pytest.fixture(scope="module", params=[KeyType.EC_P256, KeyType.RSA_2048], ids=["p256", "rsa2048"])
def tsa(request: pytest.FixtureRequest) -> Tsa:
    if request.param is KeyType.EC_P256:
        return _tsa(ec.generate_private_key(ec.SECP256R1()))
    return _tsa(rsa.generate_private_key(65537, 2048))


def _factory(tsa: Tsa, **options: Any) -> tsp.TokenFactory:
    return tsp.TokenFactory(tsa.signer, default_scheme(tsa.signer.key_type), tsa.cert, tsa.chain, POLICY, **options)


def _request(**changes: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {"hash_name": "sha256", "imprint": hashlib.sha256(b"payment").digest(),
                          "serial": 0x0123456789ABCDEF, "gen_time": WHEN, "nonce": 0x1122334455667788,
                          "cert_req": True}
    kw.update(changes)
    return kw


REQUESTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "no nonce": {"nonce": None},
    "nonce 0": {"nonce": 0},
    "nonce 255": {"nonce": 255},                                  # a leading 0x00 octet
    "nonce 256 bits": {"nonce": (1 << 256) - 1},
    "negative nonce": {"nonce": -129},                            # minimal two's complement
    "no certs": {"cert_req": False},
    "no nonce, no certs": {"nonce": None, "cert_req": False},
    "whole seconds": {"gen_time": WHEN.replace(microsecond=0)},
    "7 ms": {"gen_time": WHEN.replace(microsecond=7_000)},
    "120.999 ms": {"gen_time": WHEN.replace(microsecond=120_999)},  # truncated to .12
    "999 ms": {"gen_time": WHEN.replace(microsecond=999_999)},
    "not UTC": {"gen_time": datetime(2026, 11, 22, 18, 0, 0, 500_000, tzinfo=timezone(timedelta(hours=8)))},
    "requested policy": {"policy": OTHER_POLICY},
    "sha384": {"hash_name": "sha384", "imprint": hashlib.sha384(b"payment").digest()},
    "sha512": {"hash_name": "sha512", "imprint": hashlib.sha512(b"payment").digest()},
    "serial 1": {"serial": 1},
    "serial 20 octets": {"serial": (1 << 159) - 1},
    "serial 128": {"serial": 128},
}
OPTIONS: dict[str, dict[str, Any]] = {
    "accuracy 1 s": {},
    "accuracy none": {"accuracy_ms": None},
    "accuracy 3 s": {"accuracy_ms": 3000},
    "accuracy 1.5 s": {"accuracy_ms": 1500},
    "accuracy 250 ms": {"accuracy_ms": 250},
    "no tsa name": {"include_tsa_name": False},
    "bare": {"accuracy_ms": None, "include_tsa_name": False},
}


def _tst_info(token: bytes) -> bytes:
    encap = cms.ContentInfo.load(token)["content"]["encap_content_info"]
    assert encap["content_type"].native == "tst_info"
    return bytes(encap["content"].contents)


# Every request shape with the default options, every option with the shapes that move fields.
CASES = [("accuracy 1 s", r) for r in REQUESTS] + [
    (o, r) for o in OPTIONS if o != "accuracy 1 s" for r in ("plain", "no nonce", "no certs", "7 ms")]


@pytest.mark.parametrize(("options", "request_"), CASES, ids=[f"{o}-{r}" for o, r in CASES])
def test_fast_path_equals_reference(tsa: Tsa, options: str, request_: str) -> None:
    factory = _factory(tsa, **OPTIONS[options])
    kw = _request(**REQUESTS[request_])
    fast = factory.token(**kw)
    assert fast == factory.reference_token(**kw)
    assert tsa.signer.calls[-1] == tsa.signer.calls[-2]          # both signed the same signed attributes
    # The reference is asn1crypto's own reading too: loaded and re-encoded it is the same DER.
    assert cms.ContentInfo.load(fast).dump(force=True) == fast
    check = tsp.check_token(fast, [tsa.cert], imprint=kw["imprint"], hash_name=kw["hash_name"], nonce=kw["nonce"],
                            policy=kw.get("policy") or POLICY)
    assert check.ok, check.problem
    info = asn1tsp.TSTInfo.load(_tst_info(fast))
    assert info["gen_time"].native == kw["gen_time"].astimezone(UTC).replace(
        microsecond=kw["gen_time"].microsecond // 1000 * 1000)
    assert len(check.certificates) == (3 if kw["cert_req"] else 0)


def test_rsa_pss_and_pkcs1_unmemoised() -> None:
    """RSA PKCS#1 v1.5 is deterministic: equal without any help; PSS is random, so only by the memo."""
    tsa = _tsa(kat_rsa_key())
    plain = Signer(tsa.signer.private)
    factory = tsp.TokenFactory(plain, SigScheme.RSA_PKCS1_SHA256, tsa.cert, tsa.chain, POLICY)
    assert factory.token(**_request()) == factory.reference_token(**_request())
    pss = tsp.TokenFactory(tsa.signer, SigScheme.RSA_PSS_SHA256, tsa.cert, tsa.chain, POLICY)
    assert pss.token(**_request()) == pss.reference_token(**_request())


def test_certificates_are_a_der_set(tsa: Tsa) -> None:
    """The CertificateSet is sorted (X.690 §11.6) whatever order the chain is given in."""
    token = _factory(tsa).token(**_request())
    swapped = tsp.TokenFactory(tsa.signer, default_scheme(tsa.signer.key_type), tsa.cert, tsa.chain[::-1],
                               POLICY).token(**_request())
    assert swapped == token
    certs = [c.dump() for c in cms.ContentInfo.load(token)["content"]["certificates"]]
    assert certs == sorted([tsa.cert, *tsa.chain])


def test_integer_and_time_encodings_equal_asn1crypto() -> None:
    for n in [0, 1, 127, 128, 255, 256, 32767, 32768, -1, -128, -129, -256, -32768, -32769, (1 << 159) - 1,
              1 << 64, -(1 << 64)]:
        assert fastder._integer(n) == core.Integer(n).dump(), n
    for body in (b"", b"x" * 127, b"x" * 128, b"x" * 255, b"x" * 256, b"x" * 65536):
        assert fastder._tlv(0x04, body) == core.OctetString(body).dump()
    for micro in (0, 1, 999, 1_000, 7_000, 10_000, 100_000, 120_999, 250_000, 999_999):
        moment = WHEN.replace(microsecond=micro)
        assert fastder.generalized_time(moment) == tsp.gen_time_der(moment)
        assert tsp.gen_time_der(moment) == core.GeneralizedTime(moment.replace(
            microsecond=micro // 1000 * 1000)).dump()
    assert tsp.gen_time_der(WHEN.replace(microsecond=0)) == b"\x18\x0f20261122100000Z"
    assert tsp.gen_time_der(WHEN.replace(microsecond=7_000)) == b"\x18\x1320261122100000.007Z"
    assert tsp.gen_time_der(WHEN.replace(microsecond=120_999)) == b"\x18\x1220261122100000.12Z"


# Recorded once (from the hand assembly before the asn1crypto reference existed, and equal
# to it): TSTInfo v1, policy, sha256 imprint, serial, genTime .25, accuracy 1 s 500 ms,
# nonce, tsa [0] directoryName "O=udun tests, CN=Test TSA".
KAT_TST_INFO = bytes.fromhex(
    "3081a1020101060a2b06010401868d1f01013031300d06096086480165030402010500042046e27d1a40a72e835267e8"
    "3c1b29b0466f8d9cac878827e7366649e71ea4459502080123456789abcdef181232303236313132323130303030302e"
    "32355a3007020101800201f402081122334455667788a02ca42a302831133011060355040a0c0a7564756e2074657374"
    "733111300f06035504030c085465737420545341")
# The whole token over the same TSTInfo, certificates included, RSA PKCS#1 v1.5 with KAT_RSA_KEY
# (the hand assembly before gave the same octets but for the order of the certificates).
KAT_TOKEN_SHA256 = "a736d86b70a27bfe46036170a32e848fe65c22b2b706d121013b104dbfa94f36"
# TimeStampResp rejections (RFC 3161 §2.4.2), one per failInfo bit, status string "why" (recorded
# from the hand assembly before).
KAT_REJECTIONS = {
    "bad_alg": "3010300e02010230050c0377687903020780",
    "bad_request": "3010300e02010230050c0377687903020520",
    "bad_data_format": "3010300e02010230050c0377687903020204",
    "time_not_available": "3011300f02010230050c037768790303010002",
    "unaccepted_policy": "3011300f02010230050c037768790303000001",
    "unaccepted_extension": "3012301002010230050c03776879030407000080",
    "add_info_not_available": "3012301002010230050c03776879030406000040",
    "system_failure": "3013301102010230050c0377687903050600000040",
}


def _kat_factory() -> tsp.TokenFactory:
    kat = _tsa(kat_rsa_key())
    return tsp.TokenFactory(Signer(kat.signer.private), SigScheme.RSA_PKCS1_SHA256, kat.cert, kat.chain, POLICY,
                            accuracy_ms=1500)


KAT_REQUEST: dict[str, Any] = {"hash_name": "sha256", "imprint": hashlib.sha256(b"udun fastder KAT").digest(),
               "serial": 0x0123456789ABCDEF, "gen_time": WHEN, "nonce": 0x1122334455667788, "cert_req": True}


def test_known_answer_token() -> None:
    factory = _kat_factory()
    for build in (factory.token, factory.reference_token):
        token = build(**KAT_REQUEST)
        assert _tst_info(token) == KAT_TST_INFO
        assert hashlib.sha256(token).hexdigest() == KAT_TOKEN_SHA256


def test_known_answer_responses(tmp_path: Path) -> None:
    assert {name: tsp.rejection(name, "why").hex() for name in tsp.FAIL_BITS} == KAT_REJECTIONS
    token = _kat_factory().token(**KAT_REQUEST)
    resp = tsp.granted(token)
    assert resp == b"\x30\x82" + (len(token) + 5).to_bytes(2, "big") + b"\x30\x03\x02\x01\x00" + token
    assert tsp.response_token(resp) == token
    for name, der in KAT_REJECTIONS.items():
        status = asn1tsp.PKIStatusInfo.load(bytes.fromhex(der)[2:])
        assert status["status"].native == "rejection"
        assert status["fail_info"].contents[0] == 7 - tsp.FAIL_BITS[name] % 8   # unused bits: no trailing 0s
        with pytest.raises(PkiError, match="rejection"):
            tsp.response_token(bytes.fromhex(der))


def test_openssl_reads_and_verifies(tsa: Tsa, tmp_path: Path) -> None:
    data = write(tmp_path / "data", b"payment evidence\n")
    root = write(tmp_path / "root.pem", pem.armor("CERTIFICATE", tsa.root))
    changes: dict[str, dict[str, Any]] = {"certs": {}, "no nonce": {"nonce": None}}
    for name, change in changes.items():
        kw = _request(imprint=hashlib.sha256(data.read_bytes()).digest(), **change)
        resp = write(tmp_path / "r.tsr", tsp.granted(_factory(tsa, accuracy_ms=1500).reference_token(**kw)))
        text = openssl("ts", "-reply", "-in", str(resp), "-text")
        out = text.stdout + text.stderr
        assert text.returncode == 0 and b"Status: Granted." in out, out
        assert b"Time stamp: Nov 22 10:00:00.25 2026 GMT" in out, out
        assert b"Accuracy: 0x01 seconds, 0x01F4 millis, unspecified micros" in out, out
        assert (b"Nonce: unspecified" in out) is (kw["nonce"] is None), name
        verify = openssl("ts", "-verify", "-in", str(resp), "-data", str(data), "-CAfile", str(root))
        assert verify.returncode == 0 and b"Verification: OK" in verify.stdout, verify.stdout + verify.stderr
    for name in tsp.FAIL_BITS:
        text = openssl("ts", "-reply", "-in", str(write(tmp_path / "x.tsr", tsp.rejection(name, "why"))), "-text")
        assert text.returncode == 0 and b"Status: Rejected." in text.stdout, text.stdout + text.stderr
        assert b"why" in text.stdout

