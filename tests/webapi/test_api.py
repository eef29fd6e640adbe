"""The HTTP API: body forms, problem+json errors, never a 500 for bad input."""
from __future__ import annotations

import base64

import pytest
from asn1crypto import pem

from helpers import PIN, sample_tx


@pytest.fixture()
def signed(settings, enrolled) -> bytes:  # type: ignore[no-untyped-def]
    """A fresh payment per test: the API accepts a tx_id once per signer."""
    from signer.signing import sign_transaction

    return sign_transaction(settings, "user-ec", PIN, sample_tx())


def test_healthz_and_readyz(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/healthz")                 # liveness: the process answers
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}
    resp = client.get("/readyz")                  # readiness: what /healthz checked before, and the schema
    body = resp.get_json()
    assert resp.status_code == 200 and body["status"] == "ok", body
    assert set(body["checks"]) == {"schema", "database", "ocsp_key", "tsa_key"}
    assert all(c["status"] == "ok" for c in body["checks"].values())
    assert body["checks"]["ocsp_key"]["not_after"].endswith("Z")


@pytest.mark.parametrize("ctype", ["application/pkcs7-mime", "application/octet-stream"])
def test_verify_der_body(client, signed: bytes, ctype: str) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/api/v1/verify", data=signed, content_type=ctype)
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "TOTAL_PASSED" and body["sub_indication"] is None
    assert body["transaction"]["payee"]["name"] == "李四"
    assert body["signing_time"].endswith("Z")
    assert {c["check"] for c in body["checks"]} >= {"message digest", "signature", "signing certificate",
                                                   "certificate chain", "key usage", "transaction"}


def test_verify_json_body(client, signed: bytes) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/api/v1/verify", json={"cms": base64.b64encode(signed).decode()})
    assert resp.status_code == 200 and resp.get_json()["status"] == "TOTAL_PASSED"


@pytest.mark.parametrize("kwargs, field", [
    ({"json": {"cms": "not base64!!"}}, "cms"),
    ({"json": {"cms": ""}}, "cms"),
    ({"json": {}}, "cms"),
    ({"json": {"cms": "AAAA", "extra": 1}}, "extra"),
    ({"json": {"cms": "MAA=", "content": 5}}, "content"),
])
def test_bad_json_bodies_are_400_with_field(client, kwargs, field: str) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/api/v1/verify", **kwargs)
    assert resp.status_code == 400 and resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["code"] == "bad-input" and body["field"] == field and body["type"] == "urn:udun:problem:bad-input"


@pytest.mark.parametrize("data, ctype", [
    (b"", "application/pkcs7-mime"),
    (b"\x00" * 100, "application/pkcs7-mime"),
    (b"\x30\x80\x06\x09", "application/pkcs7-mime"),     # truncated indefinite length
    (b"{not json", "application/json"),
    (b"[1, 2]", "application/json"),
])
def test_malformed_bodies_are_400_never_500(client, data: bytes, ctype: str) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/api/v1/verify", data=data, content_type=ctype)
    assert resp.status_code == 400, resp.get_data()
    assert resp.mimetype == "application/problem+json"
    assert "Traceback" not in resp.get_data(as_text=True)


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_a_body_of_another_media_type_is_415(client, ctype: str) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/api/v1/verify", data=b"hello", content_type=ctype)
    assert resp.status_code == 415 and resp.mimetype == "application/problem+json"     # RFC 9110 §15.5.16
    assert resp.get_json()["code"] == "unsupported-media-type"


@pytest.mark.parametrize("body, ctype", [
    (b"[" * 200_000 + b"]" * 200_000, "application/json"),                     # RecursionError bait
    (bytes.fromhex("3018 0609 2a864886f70d010702 a00b 3009 020101 3100 3000 3100".replace(" ", "")),
     "application/pkcs7-mime"),                                                # empty EncapsulatedContentInfo
])
def test_hostile_bodies_are_400(client, body: bytes, ctype: str) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/api/v1/verify", data=body, content_type=ctype)
    assert resp.status_code == 400 and resp.get_json()["code"] == "bad-input"


def test_line_wrapped_base64_is_accepted(client, signed: bytes) -> None:  # type: ignore[no-untyped-def]
    wrapped = base64.encodebytes(signed).decode()          # 76-column lines, like `base64`
    resp = client.post("/api/v1/verify", json={"cms": wrapped})
    assert resp.status_code == 200 and resp.get_json()["status"] == "TOTAL_PASSED"


def test_truncated_cms_is_an_answer_not_a_crash(client, signed: bytes) -> None:  # type: ignore[no-untyped-def]
    for cut in (10, len(signed) // 2, len(signed) - 1):
        resp = client.post("/api/v1/verify", data=signed[:cut], content_type="application/pkcs7-mime")
        assert resp.status_code in (200, 400)
        if resp.status_code == 200:
            assert resp.get_json()["status"] != "TOTAL_PASSED"


def test_body_too_large_is_413(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/api/v1/verify", data=b"\x30" * (2 * 1024 * 1024), content_type="application/pkcs7-mime")
    assert resp.status_code == 413 and resp.get_json()["code"] == "too-large"


def test_unknown_route_and_method_are_problems(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/nope").get_json()["code"] == "not-found"
    resp = client.get("/api/v1/verify")
    assert resp.status_code == 405 and resp.get_json()["code"] == "method-not-allowed"


def test_ca_certificates_served_for_aia(client, ca) -> None:  # type: ignore[no-untyped-def]
    issuing, root = ca.chain_der()
    resp = client.get("/ca/issuing-ca.crt")
    assert resp.status_code == 200 and resp.mimetype == "application/pkix-cert" and resp.data == issuing
    assert client.get("/ca/root-ca.crt").data == root
    assert client.get("/ca/other.crt").status_code == 404


def _csr(settings) -> bytes:  # type: ignore[no-untyped-def]
    from signer import tokens

    # The key's own subject: a key certified for one subject is never certified for another.
    return pem.armor("CERTIFICATE REQUEST", tokens.csr(settings, "user-ec", PIN, "CN=Test user-ec,O=udun tests,C=CN"))


def test_admin_issue_requires_the_api_key(admin_client, settings) -> None:  # type: ignore[no-untyped-def]
    client = admin_client
    before = client.application.extensions["udun-admin"]["ca"].store.count()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "udun-test-admin-key-0123456789abcdef"},
                    {"Authorization": "Basic udun-test-admin-key-0123456789abcdef"}):
        resp = client.post("/api/v1/certificates", data=_csr(settings), headers=headers)
        assert resp.status_code == 401 and resp.get_json()["code"] == "unauthorized"
        assert "udun-test-admin-key-0123456789abcdef" not in resp.get_data(as_text=True)
    assert client.application.extensions["udun-admin"]["ca"].store.count() == before


def test_admin_issue_and_show(admin_client, settings) -> None:  # type: ignore[no-untyped-def]
    client = admin_client
    auth = {"Authorization": "bearer udun-test-admin-key-0123456789abcdef"}     # the scheme is case-insensitive
    resp = client.post("/api/v1/certificates", data=_csr(settings), headers=auth)
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["state"] == "issued" and body["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert resp.headers["Location"] == f"/api/v1/certificates/{body['serial']}"
    shown = client.get(resp.headers["Location"], headers=auth).get_json()
    assert shown["serial"] == body["serial"] and shown["subject"] == body["subject"]
    assert client.get("/api/v1/certificates/00ff", headers=auth).status_code == 404


def test_admin_issue_bad_csr_is_400_and_stores_nothing(admin_client) -> None:  # type: ignore[no-untyped-def]
    client = admin_client
    store = client.application.extensions["udun-admin"]["ca"].store
    before = store.count()
    resp = client.post("/api/v1/certificates", data=b"garbage", headers={"Authorization": "Bearer udun-test-admin-key-0123456789abcdef"})
    assert resp.status_code == 400 and resp.get_json()["code"] == "bad-csr"
    assert store.count() == before


def test_ocsp_is_answered_in_front_of_flask(client, ca, enrolled) -> None:  # type: ignore[no-untyped-def]
    """webapi.ocsp_wsgi answers /ocsp; anything else still reaches Flask."""
    from asn1crypto import ocsp, x509

    from pkicore.ocsp import build_request

    cert = x509.Certificate.load(enrolled["user-ec"].cert_der)
    issuer = x509.Certificate.load(ca.chain_der()[0])
    resp = client.post("/ocsp", data=build_request(cert, issuer, b"n" * 8),
                       content_type="application/ocsp-request")
    assert resp.status_code == 200 and resp.mimetype == "application/ocsp-response"
    assert resp.headers["Cache-Control"] == "no-store"
    assert ocsp.OCSPResponse.load(resp.data)["response_status"].native == "successful"
    bad = client.post("/ocsp", data=b"junk", content_type="application/ocsp-request")
    assert ocsp.OCSPResponse.load(bad.data)["response_status"].native == "malformed_request"
    assert client.get("/healthz").get_json()["status"] == "ok"
