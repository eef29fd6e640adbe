"""pkicore.tsp / tsp_check: RFC 3161 time-stamps against the real `openssl ts` and `openssl cms`.

Pure module tests: software keys, certificates made in the test, no token, no database.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import pem, x509
from asn1crypto import tsp as asn1tsp
from helpers import SoftwareKey, issue_with, make_root, openssl, write

from pkicore import der, tsp
from pkicore.algorithms import KeyType, SigScheme, default_scheme
from pkicore.cms_build import sign_data
from pkicore.cms_verify import Verifier
from pkicore.cms_view import view
from pkicore.errors import PkiError
from pkicore.pathval import ChainValidator, TrustStore
from pkicore.tsp_check import (
    add_unsigned_attribute,
    check_token,
    signature_time_stamp_imprint,
    unsigned_attribute_values,
)
from certkit import ext
from pkicore.x509build import key_identifier

POLICY = "1.3.6.1.4.1.99999.1.1"
OTHER_POLICY = "1.3.6.1.4.1.99999.1.2"
ACCEPTED = frozenset({POLICY, OTHER_POLICY})
DATA = b"payment evidence\n"
WHEN = datetime(2026, 11, 22, 10, 0, 0, 250_000, tzinfo=UTC)


@dataclass(frozen=True)
class Tsa:
    key: SoftwareKey
    cert: bytes
    factory: tsp.TokenFactory
    files: dict[str, Path]


def _tsa_extensions(root_der: bytes, key: SoftwareKey, eku_critical: bool = True) -> list[dict[str, Any]]:
    return [
        ext("basic_constraints", {"ca": False}, critical=True),
        ext("key_usage", {"digital_signature"}, critical=True),
        ext("extended_key_usage", ["time_stamping"], critical=eku_critical),   # RFC 3161 §2.3
        ext("key_identifier", key_identifier(key.public_key_der)),
        ext("authority_key_identifier", {"key_identifier": x509.Certificate.load(root_der).key_identifier}),
    ]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> tuple[SoftwareKey, bytes, Path]:
    key = SoftwareKey()
    cert = make_root(key, cn="TSA Test Root")
    return key, cert, write(tmp_path_factory.mktemp("root") / "root.pem", pem.armor("CERTIFICATE", cert))


@pytest.fixture(scope="module", params=[KeyType.EC_P256, KeyType.RSA_2048], ids=["ec", "rsa"])
def tsa(request: pytest.FixtureRequest, root: tuple[SoftwareKey, bytes, Path],
        tmp_path_factory: pytest.TempPathFactory) -> Tsa:
    root_key, root_cert, root_pem = root
    key = SoftwareKey(request.param)
    cert = issue_with(root_key, root_cert, key.public_key_der, cn="Test TSA",
                      extensions=_tsa_extensions(root_cert, key))
    d = tmp_path_factory.mktemp("tsa")
    files = {"root": root_pem, "tsa": write(d / "tsa.pem", pem.armor("CERTIFICATE", cert)),
             "data": write(d / "data.txt", DATA), "dir": d}
    factory = tsp.TokenFactory(key, default_scheme(key.key_type), cert, [root_cert], POLICY)
    return Tsa(key, cert, factory, files)


def _ok(proc: Any, expect: bytes = b"") -> bytes:
    out: bytes = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert expect in out, out
    return out


@pytest.mark.parametrize("query_args", [["-cert"], ["-cert", "-no_nonce"], ["-cert", "-tspolicy", OTHER_POLICY], []],
                         ids=["cert", "no-nonce", "policy", "no-cert"])
def test_openssl_query_answered_and_verified(tsa: Tsa, query_args: list[str]) -> None:
    d, f = tsa.files["dir"], tsa.files
    name = "_".join(a.strip("-") for a in query_args) or "plain"
    q = d / f"{name}.tsq"
    _ok(openssl("ts", "-query", "-data", str(f["data"]), "-sha256", *query_args, "-out", str(q)))
    req = tsp.parse_request(q.read_bytes(), ACCEPTED)
    assert (req.hash_name, req.imprint) == ("sha256", hashlib.sha256(DATA).digest())
    assert req.cert_req is ("-cert" in query_args)
    assert (req.nonce is None) is ("-no_nonce" in query_args)
    assert req.policy == (OTHER_POLICY if "-tspolicy" in query_args else None)
    token = tsa.factory.token(hash_name=req.hash_name, imprint=req.imprint, serial=0x0123456789ABCDEF,
                              gen_time=WHEN, nonce=req.nonce, cert_req=req.cert_req, policy=req.policy)
    r = write(d / f"{name}.tsr", tsp.granted(token))
    text = _ok(openssl("ts", "-reply", "-in", str(r), "-text"), b"Status: Granted.")
    assert b"Time stamp: Nov 22 10:00:00.25 2026 GMT" in text
    assert b"Accuracy: 0x01 seconds, unspecified millis, unspecified micros" in text
    assert (b"Nonce: unspecified" in text) is ("-no_nonce" in query_args)
    verify = ["ts", "-verify", "-in", str(r), "-CAfile", str(f["root"]), "-untrusted", str(f["tsa"])]
    _ok(openssl(*verify, "-queryfile", str(q)), b"Verification: OK")
    _ok(openssl(*verify, "-data", str(f["data"])), b"Verification: OK")
    report = check_token(token, [tsa.cert], imprint=req.imprint, hash_name="sha256", nonce=req.nonce)
    assert report.ok, report.problem
    assert len(report.certificates) == (2 if req.cert_req else 0)
    assert report.tsa_cert_der == tsa.cert


def test_token_fields_round_trip(tsa: Tsa) -> None:
    factory = tsp.TokenFactory(tsa.key, default_scheme(tsa.key.key_type), tsa.cert, [], POLICY, accuracy_ms=1500)
    imprint = hashlib.sha384(DATA).digest()
    when = datetime(2030, 1, 2, 3, 4, 5, 120_999, tzinfo=UTC)
    token = factory.token(hash_name="sha384", imprint=imprint, serial=(1 << 159) - 1, gen_time=when,
                          nonce=0, cert_req=True)
    report = check_token(token, imprint=imprint, hash_name="sha384", nonce=0)
    assert report.ok, report.problem
    assert report.certificates == (tsa.cert,)
    info = report.info
    assert info is not None
    assert (info.policy, info.hash_name, info.imprint, info.serial, info.nonce, info.accuracy_ms) == (
        POLICY, "sha384", imprint, (1 << 159) - 1, 0, 1500)
    assert info.gen_time == when.replace(microsecond=120_000)       # milliseconds, truncated
    assert info.tsa_name == "CN=Test TSA,O=udun tests"
    # X.690 §11.7: no trailing zeros in the fraction, no "." for whole seconds.
    assert b"20300102030405.12Z" in token
    assert tsp.gen_time_der(when.replace(microsecond=0))[2:] == b"20300102030405Z"
    assert tsp.gen_time_der(when.replace(microsecond=7_000))[2:] == b"20300102030405.007Z"
    unnamed = tsp.TokenFactory(tsa.key, default_scheme(tsa.key.key_type), tsa.cert, [], POLICY,
                               accuracy_ms=None, include_tsa_name=False)
    info2 = check_token(unnamed.token(hash_name="sha256", imprint=bytes(32), serial=1, gen_time=when,
                                      nonce=None, cert_req=False), [tsa.cert]).info
    assert info2 is not None and (info2.tsa_name, info2.accuracy_ms, info2.nonce) == (None, None, None)
    if tsa.key.key_type.is_rsa:                  # PSS: ours only (OpenSSL 3.0's PKCS7 code verifies PKCS#1 v1.5)
        pss = tsp.TokenFactory(tsa.key, SigScheme.RSA_PSS_SHA256, tsa.cert, [], POLICY)
        assert check_token(pss.token(hash_name="sha256", imprint=bytes(32), serial=2, gen_time=when, nonce=None,
                                     cert_req=True), imprint=bytes(32)).ok


def _req(**changes: Any) -> bytes:
    fields: dict[str, Any] = {"version": 1, "message_imprint": {
        "hash_algorithm": {"algorithm": "sha256"}, "hashed_message": bytes(32)}, "nonce": 7}
    fields.update(changes)
    return asn1tsp.TimeStampReq(fields).dump()


REFUSED = {
    "garbage": (lambda: b"\x30\x03not a request", "bad_data_format", 5),
    "ber": (lambda: b"\x30\x80" + _req()[2:] + b"\x00\x00", "bad_data_format", 5),
    "sha1": (lambda: _req(message_imprint={"hash_algorithm": {"algorithm": "sha1"}, "hashed_message": bytes(20)}),
             "bad_alg", 0),
    "md5": (lambda: _req(message_imprint={"hash_algorithm": {"algorithm": "md5"}, "hashed_message": bytes(16)}),
            "bad_alg", 0),
    "short imprint": (lambda: _req(message_imprint={"hash_algorithm": {"algorithm": "sha256"},
                                                    "hashed_message": bytes(20)}), "bad_data_format", 5),
    "unknown policy": (lambda: _req(req_policy="1.2.3.4"), "unaccepted_policy", 15),
    "extension": (lambda: _req(extensions=[{"extn_id": "1.2.3.4", "extn_value": b"x"}]), "unaccepted_extension", 16),
    "v2": (lambda: _req(version=2), "bad_request", 2),
    "negative nonce": (lambda: _req(nonce=-5), "bad_request", 2),
    "huge nonce": (lambda: _req(nonce=1 << 300), "bad_request", 2),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_requests_get_rejections_openssl_reads(case: str, tmp_path: Path) -> None:
    make, fail_info, bit = REFUSED[case]
    with pytest.raises(tsp.TsRefusal) as refused:
        tsp.parse_request(make(), ACCEPTED)
    assert refused.value.fail_info == fail_info
    resp = tsp.rejection(refused.value.fail_info, refused.value.text)
    text = _ok(openssl("ts", "-reply", "-in", str(write(tmp_path / "r.tsr", resp)), "-text"), b"Status: Rejected.")
    assert refused.value.text.encode() in text
    status = asn1tsp.PKIStatusInfo.load(resp[2:])          # the response holds only a PKIStatusInfo
    fail = status["fail_info"].contents                      # unused-bits octet, then the bits
    assert [i for i in range(8 * len(fail[1:]) - fail[0]) if fail[1 + i // 8] & 0x80 >> i % 8] == [bit]
    with pytest.raises(PkiError, match="rejection"):
        tsp.response_token(resp)


def test_openssl_sha1_query_refused(tmp_path: Path) -> None:
    data = write(tmp_path / "d", DATA)
    q = tmp_path / "q.tsq"
    _ok(openssl("ts", "-query", "-data", str(data), "-sha1", "-out", str(q)))
    with pytest.raises(tsp.TsRefusal) as refused:
        tsp.parse_request(q.read_bytes(), ACCEPTED)
    assert refused.value.fail_info == "bad_alg"


def test_build_request_and_response_token(tsa: Tsa, tmp_path: Path) -> None:
    imprint = hashlib.sha256(DATA).digest()
    req_der = tsp.build_request(imprint, nonce=42, policy=POLICY)
    _ok(openssl("ts", "-query", "-in", str(write(tmp_path / "q.tsq", req_der)), "-text"), b"Certificate required: yes")
    req = tsp.parse_request(req_der, ACCEPTED)
    assert (req.imprint, req.nonce, req.policy, req.cert_req) == (imprint, 42, POLICY, True)
    token = tsa.factory.token(hash_name="sha256", imprint=imprint, serial=9, gen_time=WHEN, nonce=42, cert_req=True)
    assert tsp.response_token(tsp.granted(token)) == token
    with pytest.raises(PkiError):
        tsp.response_token(b"garbage")
    with pytest.raises(PkiError):
        tsp.build_request(imprint[:20])


def test_check_token_reports_problems(tsa: Tsa, root: tuple[SoftwareKey, bytes, Path],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    imprint = hashlib.sha256(DATA).digest()
    token = tsa.factory.token(hash_name="sha256", imprint=imprint, serial=5, gen_time=WHEN, nonce=77, cert_req=True)
    assert check_token(token, imprint=imprint, nonce=77).ok
    at = token.index(imprint)
    flipped = token[:at] + bytes([token[at] ^ 1]) + token[at + 1:]
    assert check_token(flipped).problem == "the messageDigest does not match the TSTInfo"
    assert check_token(token, imprint=bytes(32)).problem == "the token time-stamps another imprint"
    assert check_token(token, hash_name="sha512").problem == "the token's imprint is sha256, not sha512"
    assert check_token(token, nonce=78).problem == "the token's nonce is not the request's"
    assert check_token(b"garbage").problem == "not a CMS SignedData"
    bare = tsa.factory.token(hash_name="sha256", imprint=imprint, serial=6, gen_time=WHEN, nonce=None, cert_req=False)
    assert "neither in the token" in check_token(bare).problem
    # A certificate whose timeStamping EKU is not critical: the factory refuses it...
    root_key, root_cert, _ = root
    weak = issue_with(root_key, root_cert, tsa.key.public_key_der, cn="Weak TSA",
                      extensions=_tsa_extensions(root_cert, tsa.key, eku_critical=False))
    with pytest.raises(PkiError, match="not critical"):
        tsp.TokenFactory(tsa.key, default_scheme(tsa.key.key_type), weak, [], POLICY)
    # ...and check_token refuses a token made with it anyway.
    monkeypatch.setattr(tsp, "tsa_cert_problem", lambda cert: "")
    rogue = tsp.TokenFactory(tsa.key, default_scheme(tsa.key.key_type), weak, [], POLICY)
    report = check_token(rogue.token(hash_name="sha256", imprint=imprint, serial=7, gen_time=WHEN, nonce=None,
                                     cert_req=True))
    assert not report.ok and "not critical (RFC 3161 §2.3)" in report.problem
    assert report.tsa_cert_der == weak


@pytest.mark.parametrize("ess_alg", ["sha1", "sha256"])     # signingCertificate v1 / v2 (RFC 5816)
def test_check_token_reads_openssl_tokens(tsa: Tsa, ess_alg: str, tmp_path: Path) -> None:
    conf = write(tmp_path / "tsa.cnf", f"""[tsa]
default_tsa = t
[t]
serial = {tmp_path / "serial"}
signer_digest = sha256
default_policy = {POLICY}
digests = sha256
accuracy = secs:1, millisecs:500
tsa_name = yes
ess_cert_id_alg = {ess_alg}
""".encode())
    q = tmp_path / "q.tsq"
    _ok(openssl("ts", "-query", "-data", str(tsa.files["data"]), "-sha256", "-cert", "-out", str(q)))
    resp = tmp_path / "r.tsr"
    _ok(openssl("ts", "-reply", "-config", str(conf), "-queryfile", str(q), "-signer", str(tsa.files["tsa"]),
                "-inkey", str(write(tmp_path / "k.pem", tsa.key.pem())), "-out", str(resp)))
    req = tsp.parse_request(q.read_bytes(), ACCEPTED)
    report = check_token(tsp.response_token(resp.read_bytes()), imprint=req.imprint, nonce=req.nonce)
    assert report.ok, report.problem
    assert report.info is not None and (report.info.policy, report.info.accuracy_ms) == (POLICY, 1500)
    assert report.info.tsa_name == "CN=Test TSA,O=udun tests"


def _signed_data_parts(cms_der: bytes) -> tuple[bytes, bytes]:
    """(SignedData contents before SignerInfos, the single SignerInfo's contents)."""
    _, wrapper = der.children(cms_der, der.top(cms_der))
    (sd,) = der.children(cms_der, wrapper)
    infos = der.children(cms_der, sd)[-1]
    (signer,) = der.children(cms_der, infos)
    return cms_der[sd.cstart:infos.start], der.contents(cms_der, signer)


def test_signature_time_stamp_attribute(tsa: Tsa, root: tuple[SoftwareKey, bytes, Path], tmp_path: Path) -> None:
    root_key, root_cert, root_pem = root
    signer = SoftwareKey()
    cert = issue_with(root_key, root_cert, signer.public_key_der, cn="Payer")
    cms = sign_data(signer, cert, [], DATA, signing_time=WHEN)
    before = view(cms).signers[0]
    imprint = signature_time_stamp_imprint(before.signature)
    tokens = [tsa.factory.token(hash_name="sha256", imprint=imprint, serial=n, gen_time=WHEN, nonce=None,
                                cert_req=True) for n in (100, 101)]
    once = add_unsigned_attribute(cms, tsp.ID_AA_TIME_STAMP_TOKEN, tokens[0])
    twice = add_unsigned_attribute(once, tsp.ID_AA_TIME_STAMP_TOKEN, tokens[1])
    assert unsigned_attribute_values(cms, tsp.ID_AA_TIME_STAMP_TOKEN) == []
    assert unsigned_attribute_values(once, tsp.ID_AA_TIME_STAMP_TOKEN) == [tokens[0]]
    assert sorted(unsigned_attribute_values(twice, tsp.ID_AA_TIME_STAMP_TOKEN)) == sorted(tokens)
    for n, out in enumerate((once, twice)):
        after = view(out).signers[0]
        assert (after.signed_attrs, after.signature) == (before.signed_attrs, before.signature)
        head, body = _signed_data_parts(cms)
        head_after, body_after = _signed_data_parts(out)
        assert head_after == head and body_after.startswith(body)   # only [1] unsignedAttrs added
        path = write(tmp_path / f"s{n}.p7s", out)
        _ok(openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", str(path), "-CAfile", str(root_pem),
                    "-purpose", "any", "-out", str(tmp_path / "out")), b"Verification successful")
        assert (tmp_path / "out").read_bytes() == DATA
    assert check_token(tokens[0], imprint=imprint).ok
    report = Verifier(ChainValidator(TrustStore([root_cert], []))).verify(twice)   # our verifier reads it too
    assert [c.passed for c in report.checks if c.name == "signature"] == [True]
    # A BER CMS streamed by `openssl cms -sign`: re-encoded as DER, its signed attributes kept as received.
    key_pem = write(tmp_path / "k.pem", signer.pem())
    cert_pem = write(tmp_path / "c.pem", pem.armor("CERTIFICATE", cert))
    ber = openssl("cms", "-sign", "-binary", "-nodetach", "-stream", "-outform", "DER", "-in",
                  str(write(tmp_path / "d", DATA)), "-signer", str(cert_pem), "-inkey", str(key_pem)).stdout
    assert ber[1] == 0x80                                              # indefinite length
    ts = tsa.factory.token(hash_name="sha256", imprint=signature_time_stamp_imprint(view(ber).signers[0].signature),
                           serial=102, gen_time=WHEN, nonce=None, cert_req=True)
    from_ber = add_unsigned_attribute(ber, tsp.ID_AA_TIME_STAMP_TOKEN, ts)
    assert view(from_ber).signers[0].signed_attrs == view(ber).signers[0].signed_attrs
    assert unsigned_attribute_values(from_ber, tsp.ID_AA_TIME_STAMP_TOKEN) == [ts]
    _ok(openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", str(write(tmp_path / "b.p7s", from_ber)),
                "-CAfile", str(root_pem), "-purpose", "any", "-out", str(tmp_path / "out")), b"Verification successful")
