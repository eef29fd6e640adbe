"""Issue 4: the OCSP responder, against the real `openssl ocsp` and a running server."""
from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import ocsp, pem, x509

from helpers import LINTER, SoftwareKey, make_root, openssl, running_server, write

LINT_OCSP = str(Path(sys.executable).parent / "lint_ocsp_response")


@pytest.fixture(scope="module")
def server(ca, home: Path):  # type: ignore[no-untyped-def]
    """`udun serve` (gunicorn) on a free loopback port, stopped after the module."""

    with running_server(home) as (base, _proc):
        yield base


@pytest.fixture(scope="module")
def files(ca, home: Path) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    issuing, root = ca.chain_der()
    d = home / "ocsp"
    d.mkdir(exist_ok=True)
    return {"issuing": write(d / "issuing.pem", pem.armor("CERTIFICATE", issuing)),
            "root": write(d / "root.pem", pem.armor("CERTIFICATE", root)), "dir": d}


def _leaf(ca, files, cn: str) -> tuple[str, Path]:  # type: ignore[no-untyped-def]
    from pkicore.x509build import build_csr, parse_name

    rec = ca.issue(build_csr(SoftwareKey(), parse_name(f"CN={cn},O=ocsp tests")))
    return rec.serial, write(files["dir"] / f"{rec.serial}.pem", pem.armor("CERTIFICATE", rec.der))


def _ask(server: str, files, leaf: Path, *extra: str) -> str:  # type: ignore[no-untyped-def]
    proc = openssl("ocsp", "-issuer", str(files["issuing"]), "-cert", str(leaf), "-url", f"{server}/ocsp",
                   "-CAfile", str(files["root"]), *extra)
    out = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 0, out
    assert "Response verify OK" in out, out
    return out


def test_status_story_over_post(ca, server: str, files) -> None:  # type: ignore[no-untyped-def]
    """Acceptance 1: good -> held (revoked, certificateHold) -> good again -> revoked (reason)."""
    from ca.revocation import Revocation

    rev = Revocation(ca)
    serial, leaf = _leaf(ca, files, "OCSP Story")
    assert f"{leaf}: good" in _ask(server, files, leaf)
    rev.hold(serial)
    held = _ask(server, files, leaf)
    assert f"{leaf}: revoked" in held and "certificateHold" in held
    rev.release(serial)
    assert f"{leaf}: good" in _ask(server, files, leaf)
    rev.revoke(serial, "keyCompromise")
    revoked = _ask(server, files, leaf)
    assert f"{leaf}: revoked" in revoked and "keyCompromise" in revoked


def _get(server: str, request_der: bytes) -> tuple[bytes, dict[str, str]]:
    encoded = urllib.parse.quote(base64.b64encode(request_der).decode(), safe="")
    with urllib.request.urlopen(f"{server}/ocsp/{encoded}", timeout=30) as resp:
        return resp.read(), dict(resp.headers)


def test_get_with_caching_and_refresh_on_status_change(ca, server: str, files) -> None:  # type: ignore[no-untyped-def]
    from ca.revocation import Revocation

    serial, leaf = _leaf(ca, files, "OCSP GET")
    req = files["dir"] / "get.req"
    proc = openssl("ocsp", "-issuer", str(files["issuing"]), "-cert", str(leaf), "-no_nonce", "-reqout", str(req))
    assert proc.returncode == 0
    first, headers = _get(server, req.read_bytes())
    assert headers["Content-Type"] == "application/ocsp-response" and "max-age=" in headers["Cache-Control"]
    again, _ = _get(server, req.read_bytes())
    resp = write(files["dir"] / "get.resp", first)
    out = openssl("ocsp", "-respin", str(resp), "-issuer", str(files["issuing"]), "-cert", str(leaf),
                  "-CAfile", str(files["root"]))
    text = (out.stdout + out.stderr).decode()
    assert "Response verify OK" in text and f"{leaf}: good" in text
    # Pre-signed and cached, by whichever worker answers: the same thisUpdate both times.
    def this_update(der: bytes) -> datetime:
        basic = ocsp.OCSPResponse.load(der).basic_ocsp_response
        return basic["tbs_response_data"]["responses"][0]["this_update"].native
    assert again == first or abs((this_update(again) - this_update(first)).total_seconds()) < 5
    Revocation(ca).hold(serial)
    after, _ = _get(server, req.read_bytes())
    status = ocsp.OCSPResponse.load(after).basic_ocsp_response["tbs_response_data"]["responses"][0]["cert_status"]
    assert status.name == "revoked"                      # refreshed at once, not served from cache


def _request(ca, serial: int, nonce: bytes | None, issuer: x509.Certificate | None = None) -> bytes:  # type: ignore[no-untyped-def]
    from pkicore.ocsp import issuer_hashes

    issuer = issuer or x509.Certificate.load(ca.chain_der()[0])
    name_hash, key_hash = issuer_hashes(issuer, "sha1")
    tbs: dict[str, object] = {"request_list": [{"req_cert": {
        "hash_algorithm": {"algorithm": "sha1"}, "issuer_name_hash": name_hash, "issuer_key_hash": key_hash,
        "serial_number": serial}}]}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "critical": False, "extn_value": nonce}]
    return ocsp.OCSPRequest({"tbs_request": tbs}).dump()


def _status_of(der: bytes) -> str:
    return ocsp.OCSPResponse.load(der)["response_status"].native


@pytest.mark.parametrize("size, status", [(1, "successful"), (32, "successful"), (33, "malformed_request")])
def test_nonce_sizes(ca, enrolled, size: int, status: str) -> None:  # type: ignore[no-untyped-def]
    from ca.ocsp import Responder

    nonce = os.urandom(size)
    der = Responder(ca).respond(_request(ca, int(enrolled["user-ec"].serial, 16), nonce)).der
    assert _status_of(der) == status
    if status == "successful":
        exts = ocsp.OCSPResponse.load(der).basic_ocsp_response["tbs_response_data"]["response_extensions"]
        assert {e["extn_id"].native: e["extn_value"].parsed.native for e in exts}["nonce"] == nonce


def test_33_octet_nonce_refused_over_http(ca, server: str, enrolled) -> None:  # type: ignore[no-untyped-def]
    req = urllib.request.Request(f"{server}/ocsp", data=_request(ca, int(enrolled["user-ec"].serial, 16),
                                                                 os.urandom(33)),
                                 headers={"Content-Type": "application/ocsp-request"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200 and _status_of(resp.read()) == "malformed_request"


@pytest.mark.parametrize("body", [b"garbage", b"", b"\x30\x03\x02\x01\x01", b"\x30\x80" * 1000])
def test_garbage_is_malformed_request_never_500(server: str, body: bytes) -> None:
    req = urllib.request.Request(f"{server}/ocsp", data=body, headers={"Content-Type": "application/ocsp-request"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200 and _status_of(resp.read()) == "malformed_request"
    with urllib.request.urlopen(f"{server}/ocsp/not-base64!!", timeout=30) as resp:
        assert _status_of(resp.read()) == "malformed_request"


def test_foreign_issuer_is_unauthorized_and_unknown_serial_unknown(ca) -> None:  # type: ignore[no-untyped-def]
    from ca.ocsp import Responder

    responder = Responder(ca)
    rogue = x509.Certificate.load(make_root(SoftwareKey()))
    assert _status_of(responder.respond(_request(ca, 12345, None, issuer=rogue)).der) == "unauthorized"
    der = responder.respond(_request(ca, 0x7777777777777777, None)).der
    single = ocsp.OCSPResponse.load(der).basic_ocsp_response["tbs_response_data"]["responses"][0]
    assert single["cert_status"].name == "unknown"


def test_pkilint_finds_nothing_in_responses_and_responder_cert(ca, enrolled, files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ca.ocsp import Responder
    from ca.revocation import Revocation

    responder = Responder(ca)
    serial, _ = _leaf(ca, files, "OCSP Lint")
    Revocation(ca).revoke(serial, "superseded")
    for i, (s, nonce) in enumerate([(int(enrolled["user-ec"].serial, 16), None), (int(serial, 16), b"n" * 16),
                                    (0x7777777777777777, None)]):
        path = write(tmp_path / f"r{i}.der", responder.respond(_request(ca, s, nonce)).der)
        proc = subprocess.run([LINT_OCSP, "lint", "-s", "WARNING", str(path)], capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout
    cert = write(tmp_path / "responder.pem", pem.armor("CERTIFICATE", responder.responder().cert.dump()))
    proc = subprocess.run([LINTER, "lint", "-s", "WARNING", str(cert)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout


def test_responder_certificate_profile_and_renewal(ca) -> None:  # type: ignore[no-untyped-def]
    """The responder key is on the online token; renewal is the CA side's job (ca.renewal),
    and a serving Responder picks the new certificate up from the database."""
    from ca import delegated, renewal
    from ca.authority import CertificateAuthority
    from ca.ocsp import Responder
    from pkicore.clock import fixed

    serving = Responder(ca)
    r = serving.responder()
    cert = r.cert
    assert cert.extended_key_usage_value.native == ["ocsp_signing"]
    assert any(e["extn_id"].native == "ocsp_no_check" for e in cert["tbs_certificate"]["extensions"])
    validity = cert["tbs_certificate"]["validity"]
    assert (validity["not_after"].native - validity["not_before"].native) <= timedelta(days=7, minutes=2)
    assert ca.store.authority("ocsp").token_label == ca.settings.online_token
    # Six days later the certificate has under two days left: the renewal job makes a new one.
    later = CertificateAuthority(ca.settings, ca.store, clock=fixed(datetime.now(UTC) + timedelta(days=6)))
    assert not renewal.due(ca, "ocsp") and renewal.due(later, "ocsp")
    assert [x.name for x in renewal.renew_all(later)] == ["ocsp"]
    old_reload, delegated.RELOAD_SECONDS = delegated.RELOAD_SECONDS, 0.0
    try:
        renewed = serving.responder()
    finally:
        delegated.RELOAD_SECONDS = old_reload
    assert renewed.cert.serial_number != cert.serial_number and renewed.key.key_id != r.key.key_id
    assert renewed.not_after > r.not_after
    # Back to a responder certificate valid today, for the tests that follow in this session.
    renewal.renew(ca, "ocsp")


def test_same_name_other_key_is_unauthorized(ca, enrolled) -> None:  # type: ignore[no-untyped-def]
    """Issuers are told apart by name hash AND key hash: a look-alike CA gets `unauthorized`."""
    from ca.ocsp import Responder
    from pkicore import names
    from pkicore.algorithms import default_scheme
    from certkit import build_tbs, sign_tbs
    from pkicore.x509build import key_identifier

    real = x509.Certificate.load(ca.chain_der()[0])
    k = SoftwareKey()
    look_alike = x509.Certificate.load(sign_tbs(k, build_tbs(
        serial=99, issuer=real.subject, subject=real.subject, public_key_der=k.public_key_der,
        not_before=datetime.now(UTC) - timedelta(days=1), not_after=datetime.now(UTC) + timedelta(days=1),
        scheme=default_scheme(k.key_type), extensions=[]), default_scheme(k.key_type)))
    assert look_alike.subject == real.subject and names.rfc4514(look_alike.subject)
    assert key_identifier(k.public_key_der) != real.key_identifier
    der = Responder(ca).respond(_request(ca, int(enrolled["user-ec"].serial, 16), None, issuer=look_alike)).der
    assert _status_of(der) == "unauthorized"


def test_answer_cache_is_bounded_and_keeps_no_unknown_serials(ca, enrolled) -> None:  # type: ignore[no-untyped-def]
    """Issue 10 finding (memory): 40,000 random serials grew a worker by 45 MB. Unknown serials
    are never cached, the cache is an LRU of UDUN_OCSP_CACHE_SIZE, keyed by the whole CertID."""
    import random

    from ca.ocsp import Responder
    from config.settings import load_settings

    assert load_settings({"UDUN_OCSP_CACHE_SIZE": "2", "UDUN_HOME": str(ca.settings.home)}).ocsp_cache_size == 2
    responder = Responder(ca)
    rng = random.Random(4711)
    for _ in range(300):
        der = responder.respond(_request(ca, rng.getrandbits(120) | 1, None)).der
        assert ocsp.OCSPResponse.load(der).basic_ocsp_response["tbs_response_data"]["responses"][0][
            "cert_status"].name == "unknown"
    assert len(responder._cache) == 0 and len(responder._requests) == 0
    known = [int(e.serial, 16) for e in enrolled.values()]
    for serial in known:
        responder.respond(_request(ca, serial, None))
    assert len(responder._cache) == len(known) and len(responder._requests) == len(known)
    # A small bound (what UDUN_OCSP_CACHE_SIZE=2 gives): least recently used out.
    small = Responder(ca)
    small._cache_size = 2
    for serial in known:
        small.respond(_request(ca, serial, None))
    assert len(small._cache) == 2 and len(small._requests) == 2


def _nonce_of(der: bytes) -> bytes | None:
    exts = ocsp.OCSPResponse.load(der).basic_ocsp_response["tbs_response_data"]["response_extensions"]
    return {e["extn_id"].native: e["extn_value"].parsed.native for e in exts or []}.get("nonce")


def test_a_batch_signs_the_nonced_requests_ahead(ca, enrolled) -> None:  # type: ignore[no-untyped-def]
    """Responder.batch (udun serve-ocsp's turn of the loop): the nonced requests answered
    ahead, each its own answer with its own nonce; the rest (cached, garbage, a foreign
    issuer, an unknown serial) answered as alone; nothing kept after the block."""
    from ca.ocsp import Responder

    responder = Responder(ca)
    serial = int(enrolled["user-ec"].serial, 16)
    nonces = [os.urandom(16) for _ in range(3)]
    nonced = [_request(ca, serial, n) for n in nonces]
    rogue = x509.Certificate.load(make_root(SoftwareKey()))
    others = [_request(ca, serial, None), b"garbage", _request(ca, 12345, os.urandom(8), issuer=rogue),
              _request(ca, 0x7777777777777777, b"unknown-serial")]
    with responder.batch([*nonced, nonced[0], *others]):
        assert sorted(responder._prepared) == sorted([*nonced, others[3]])      # signed ahead
        answers = [responder.respond(d).der for d in [*nonced, nonced[0], *others]]
        assert not responder._prepared
    assert [_nonce_of(a) for a in answers[:4]] == [*nonces, nonces[0]]          # the repeat signed again
    assert answers[0] != answers[3]
    for a in answers[:4]:
        single = ocsp.OCSPResponse.load(a).basic_ocsp_response["tbs_response_data"]["responses"][0]
        assert single["cert_status"].name == "good" and single["cert_id"]["serial_number"].native == serial
    assert [_status_of(a) for a in answers[4:]] == ["successful", "malformed_request", "unauthorized", "successful"]
    assert _nonce_of(answers[4]) is None and _nonce_of(answers[7]) == b"unknown-serial"


def test_a_batch_whose_token_fails_leaves_the_rest_to_respond(ca, enrolled, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The responder key failing mid-batch (its token away): what was signed is handed out,
    the rest answered one by one as before (tryLater while the key cannot sign)."""
    from ca.ocsp import Responder
    from pkicore import ocsp as ocspmod
    from pkicore.errors import ErrorKind, PkiError

    responder = Responder(ca)
    serial = int(enrolled["user-ec"].serial, 16)
    nonced = [_request(ca, serial, os.urandom(16)) for _ in range(3)]
    real = ocspmod.ResponseFactory.signed
    calls: list[bytes] = []

    def second_fails(self, data: bytes) -> bytes:  # type: ignore[no-untyped-def]
        calls.append(data)
        if len(calls) >= 2:
            raise PkiError(ErrorKind.UNAVAILABLE, "the token is away (injected)")
        return real(self, data)

    monkeypatch.setattr(ocspmod.ResponseFactory, "signed", second_fails)
    with responder.batch(nonced):
        assert list(responder._prepared) == nonced[:1]
        statuses = [_status_of(responder.respond(d).der) for d in nonced]
    assert statuses == ["successful", "try_later", "try_later"]


def test_chunked_bodies_are_read_by_the_fast_paths(ca, server: str, enrolled) -> None:  # type: ignore[no-untyped-def]
    """OCSP and TSA requests sent chunked (no Content-Length) through gunicorn are read and
    answered; a chunked body over the limit is refused as one over it by Content-Length."""
    import http.client

    from asn1crypto import tsp as asn1tsp

    host = urllib.parse.urlsplit(server)
    nonce = os.urandom(16)
    query = asn1tsp.TimeStampReq({"version": 1, "message_imprint": {
        "hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x11" * 32}, "cert_req": True}).dump()

    def post(path: str, body: bytes, ctype: str) -> bytes:
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        try:
            conn.request("POST", path, body=iter([body[:10], body[10:]]), encode_chunked=True,
                         headers={"Content-Type": ctype})
            resp = conn.getresponse()
            assert resp.status == 200
            return resp.read()
        finally:
            conn.close()

    der = post("/ocsp", _request(ca, int(enrolled["user-ec"].serial, 16), nonce), "application/ocsp-request")
    assert _status_of(der) == "successful" and _nonce_of(der) == nonce
    assert _status_of(post("/ocsp", b"\x30" * (70 * 1024), "application/ocsp-request")) == "malformed_request"
    stamped = asn1tsp.TimeStampResp.load(post("/tsa", query, "application/timestamp-query"))
    assert stamped["status"]["status"].native == "granted"
    refused = post("/tsa", b"\x30" * (70 * 1024), "application/timestamp-query")
    status = asn1tsp.PKIStatusInfo.load(refused[2:])                 # TimeStampResp {status} alone
    assert status["status"].native == "rejection" and status["fail_info"].native == {"bad_request"}


def test_a_batch_signs_at_most_batch_max_ahead(ca, enrolled) -> None:  # type: ignore[no-untyped-def]
    from ca import ocsp as ocsp_mod
    from ca.ocsp import Responder

    responder = Responder(ca)
    serial = int(enrolled["user-ec"].serial, 16)
    nonces = [os.urandom(16) for _ in range(ocsp_mod.BATCH_MAX + 5)]
    requests = [_request(ca, serial, n) for n in nonces]
    with responder.batch(requests):
        assert len(responder._prepared) == ocsp_mod.BATCH_MAX
        assert [_nonce_of(responder.respond(r).der) for r in requests] == nonces   # the rest one by one
