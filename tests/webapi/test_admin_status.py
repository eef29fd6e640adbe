"""Issue 12, point 4: hold, release and revoke a certificate, and publish a CRL, through the
admin API (behind the admin key); bad input refused with its field, nothing changed by a
refused request; every change in the status history and on the next CRL."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509 as cx509

from helpers import software_csr

ADMIN = {"Authorization": "Bearer udun-test-admin-key-0123456789abcdef"}


def _issue(admin_client) -> str:  # type: ignore[no-untyped-def]
    resp = admin_client.post("/api/v1/certificates", data=software_csr(f"status-{uuid.uuid4().hex[:10]}"),
                             headers=ADMIN)
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["serial"])


def _listed(ca, serial: str) -> cx509.RevokedCertificate | None:  # type: ignore[no-untyped-def]
    crl = cx509.load_der_x509_crl(ca.latest_crl("issuing").der)
    return crl.get_revoked_certificate_by_serial_number(int(serial, 16))


def test_hold_release_revoke_through_the_api(admin_client, ca) -> None:  # type: ignore[no-untyped-def]
    serial = _issue(admin_client)
    held = admin_client.post(f"/api/v1/certificates/{serial.upper()}/hold", headers=ADMIN)
    assert held.status_code == 200 and held.get_json()["status"] == "on-hold", held.get_json()
    entry = _listed(ca, serial)
    assert entry is not None and entry.extensions.get_extension_for_class(cx509.CRLReason).value.reason \
        is cx509.ReasonFlags.certificate_hold
    released = admin_client.post(f"/api/v1/certificates/{serial}/release", headers=ADMIN).get_json()
    assert released["status"] == "good" and _listed(ca, serial) is None
    compromised = (datetime.now(timezone.utc) - timedelta(hours=3)).replace(microsecond=0)
    revoked = admin_client.post(f"/api/v1/certificates/{serial}/revoke", headers=ADMIN, json={
        "reason": "keyCompromise", "invalidity_date": compromised.isoformat().replace("+00:00", "Z")})
    body = revoked.get_json()
    assert revoked.status_code == 200 and body["status"] == "revoked", body
    assert body["revocation_reason"] == "keyCompromise" and body["invalidity_date"] == \
        compromised.isoformat().replace("+00:00", "Z")
    assert [(h["action"], h["actor"]) for h in body["history"]] == [("hold", "admin-key"), ("release", "admin-key"),
                                                                     ("revoke", "admin-key")]
    entry = _listed(ca, serial)
    assert entry is not None and entry.extensions.get_extension_for_class(cx509.InvalidityDate).value \
        .invalidity_date_utc == compromised
    again = admin_client.post(f"/api/v1/certificates/{serial}/hold", headers=ADMIN)
    assert again.status_code == 409 and again.get_json()["code"] == "conflict"


@pytest.mark.parametrize(("route", "body", "field"), [
    ("revoke", {"reason": "certificateHold"}, "reason"),
    ("revoke", {"reason": "no reason"}, "reason"),
    ("revoke", {"reason": 1}, "reason"),
    ("revoke", {"invalidity_date": "yesterday"}, "invalidity_date"),
    ("revoke", {"invalidity_date": "2026-11-22T08:00:00"}, "invalidity_date"),
    ("revoke", {"invalidity_date": "2999-01-01T00:00:00Z"}, None),          # in the future
    ("revoke", {"why": "lost"}, "why"),
    ("hold", {"reason": "lost"}, "reason"),
    ("revoke", [], None),
])
def test_bad_requests_change_nothing(admin_client, ca, route, body, field) -> None:  # type: ignore[no-untyped-def]
    serial = _issue(admin_client)
    resp = admin_client.post(f"/api/v1/certificates/{serial}/{route}", headers=ADMIN, json=body)
    problem = resp.get_json()
    assert resp.status_code == 400 and problem["code"] == "bad-input", problem
    assert problem.get("field") == field, problem
    assert ca.get(serial).status == "good" and ca.store.history(serial) == []


def test_bodies_that_are_not_json_and_unknown_serials(admin_client, ca) -> None:  # type: ignore[no-untyped-def]
    serial = _issue(admin_client)
    text = admin_client.post(f"/api/v1/certificates/{serial}/revoke", headers=ADMIN, data=b"keyCompromise",
                             content_type="text/plain")
    broken = admin_client.post(f"/api/v1/certificates/{serial}/revoke", headers=ADMIN, data=b"{",
                               content_type="application/json")
    assert (text.status_code, text.get_json()["code"]) == (415, "unsupported-media-type")
    assert broken.status_code == 400
    missing = admin_client.post("/api/v1/certificates/00ff/revoke", headers=ADMIN, json={})
    assert missing.status_code == 404 and missing.get_json()["code"] == "not-found"
    assert ca.get(serial).status == "good"


def test_every_status_route_needs_the_key(admin_client, ca) -> None:  # type: ignore[no-untyped-def]
    serial = _issue(admin_client)
    crl_before = ca.latest_crl("issuing").number
    for route in ("hold", "release", "revoke"):
        for headers in ({}, {"Authorization": "Bearer wrong-key-wrong-key-wrong-key-0000"}):
            resp = admin_client.post(f"/api/v1/certificates/{serial}/{route}", headers=headers, json={})
            assert resp.status_code == 401, (route, resp.get_json())
            assert resp.headers["WWW-Authenticate"] == ('Bearer realm="udun"' + (', error="invalid_token"'
                                                                                 if headers else ""))
    assert admin_client.post("/api/v1/crls").status_code == 401
    assert ca.get(serial).status == "good" and ca.latest_crl("issuing").number == crl_before


def test_crl_now(admin_client, ca) -> None:  # type: ignore[no-untyped-def]
    before = ca.latest_crl("issuing").number
    resp = admin_client.post("/api/v1/crls", headers=ADMIN)
    assert resp.status_code == 201 and resp.get_json()["number"] == before + 1, resp.get_json()
    assert ca.latest_crl("issuing").number == before + 1
    root = admin_client.post("/api/v1/crls?ca=root", headers=ADMIN).get_json()
    assert root["ca"] == "root" and root["number"] == ca.latest_crl("root").number
    bad = admin_client.post("/api/v1/crls?ca=policy", headers=ADMIN)
    assert bad.status_code == 400 and bad.get_json()["field"] == "ca"


def test_answers_match_the_openapi_document(admin_client) -> None:  # type: ignore[no-untyped-def]
    from test_openapi import check_response

    from webapi.openapi_doc import admin_document

    doc = admin_document()
    serial = _issue(admin_client)
    path = "/api/v1/certificates/{serial}/"
    check_response(doc, path + "hold", "post", admin_client.post(f"/api/v1/certificates/{serial}/hold", headers=ADMIN))
    check_response(doc, path + "release", "post",
                   admin_client.post(f"/api/v1/certificates/{serial}/release", headers=ADMIN, json={}))
    check_response(doc, path + "release", "post",
                   admin_client.post(f"/api/v1/certificates/{serial}/release", headers=ADMIN))      # 409
    check_response(doc, path + "revoke", "post", admin_client.post(
        f"/api/v1/certificates/{serial}/revoke", headers=ADMIN, json={"reason": "superseded"}))
    check_response(doc, path + "revoke", "post", admin_client.post(
        f"/api/v1/certificates/{serial}/revoke", headers=ADMIN, json={"reason": "bad"}))
    check_response(doc, path + "hold", "post", admin_client.post("/api/v1/certificates/00ff/hold", headers=ADMIN))
    check_response(doc, "/api/v1/crls", "post", admin_client.post("/api/v1/crls", headers=ADMIN))
    check_response(doc, "/api/v1/crls", "post", admin_client.post("/api/v1/crls"))


def test_the_bank_facing_service_cannot_change_a_status(client, ca) -> None:  # type: ignore[no-untyped-def]
    """udun serve holds no CA key: with the admin key it serves no status change and no CRL
    publication (404 or 405, and nothing changed), so a bank-facing insider holding that key
    cannot revoke or hold a customer's certificate."""
    serial = ca.store.certificates(limit=1)[0].serial
    before = (ca.get(serial).status, ca.latest_crl("issuing").number)
    for path in (f"/api/v1/certificates/{serial}/hold", f"/api/v1/certificates/{serial}/revoke",
                 f"/api/v1/certificates/{serial}/release", "/api/v1/crls"):
        resp = client.post(path, headers=ADMIN, json={})
        assert resp.status_code in (404, 405), (path, resp.status_code)
    assert (ca.get(serial).status, ca.latest_crl("issuing").number) == before
    # Banks may read a certificate (GET, scope certificates:read); nothing there changes one.
    writes = {(r.rule, m) for r in client.application.url_map.iter_rules()
              if r.rule.startswith(("/api/v1/certificates", "/api/v1/crls"))
              for m in r.methods - {"GET", "HEAD", "OPTIONS"}}
    assert not writes, writes
