"""Issue 12 point 2: an operator logs in with the key on their own SoftHSM token (a signed
challenge), every change in that session carries the token's signature, the audit log
keeps it (checked here with openssl), and a revoked, held, expired or removed certificate
cannot log in or go on."""
from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
from asn1crypto import pem
from flask import Flask
from flask.testing import FlaskClient

from ca.operators import LOGIN_REFUSED, Operators
from helpers import PIN, SO_PIN, openssl, software_csr, udun, write
from pkicore.errors import ErrorKind, PkiError
from signer import operator_client

LABEL = "op-login"


def _sender(client: FlaskClient) -> operator_client.Send:
    def send(method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        resp = client.open(path, method=method, data=body or None,
                           headers={**headers, "Content-Type": "application/json"} if body else headers)
        return resp.status_code, resp.get_json(silent=True)
    return send


class Token:
    """The operator's token: one key, several certificates of ours for it."""

    def __init__(self, settings: Any, ca: Any) -> None:
        from signer import tokens

        tokens.init(settings, LABEL, PIN, SO_PIN)
        from pkicore.algorithms import KeyType

        tokens.keygen(settings, LABEL, PIN, KeyType.EC_P256)
        self.settings, self.ca = settings, ca
        self.csr = tokens.csr(settings, LABEL, PIN, "CN=Operator Alice,O=udun tests,C=CN")
        first = self.certificate()
        tokens.import_certificates(settings, LABEL, PIN, pem.armor("CERTIFICATE", first.der))
        self.first = first

    def certificate(self) -> Any:
        return self.ca.issue(self.csr, "client", requester="pytest")

    def key(self) -> Any:
        from signer.tokens import signing_key

        return signing_key(self.settings, LABEL, PIN)


@pytest.fixture(scope="module")
def token(settings: Any, ca: Any) -> Token:
    return Token(settings, ca)


@pytest.fixture(scope="module")
def ops(admin_app: Flask) -> Operators:
    return admin_app.extensions["udun-admin"]["operators"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def alice(ops: Operators, token: Token) -> str:
    """The admin whose token it is (a key logs in one operator only)."""
    name = f"alice-{uuid.uuid4().hex[:8]}"
    ops.add(name, "admin", actor="pytest")
    ops.add_cert(name, token.first.serial, actor="pytest")
    return name


@pytest.fixture()
def operator(ops: Operators, token: Token, alice: str) -> Iterator[tuple[str, Any]]:
    """Alice with a new certificate of the token's key registered to her."""
    cert = token.certificate()
    ops.add_cert(alice, cert.serial, actor="pytest")
    yield alice, cert


def _login(admin_app: Flask, token: Token, cert: Any) -> operator_client.OperatorSession:
    return operator_client.login(_sender(admin_app.test_client()), token.key(), cert.der)


def _entries(admin_app: Flask, count: int = 20) -> list[Any]:
    from ca.storage.audit import AuditStore

    return AuditStore(admin_app.extensions["udun-admin"]["ca"].store).entries(None, 1_000_000)[-count:]


def test_token_login_and_a_signed_change_kept_in_the_audit_log(admin_app: Flask, token: Token, operator: Any,
                                                               tmp_path: Path) -> None:
    name, cert = operator
    session = _login(admin_app, token, cert)
    assert session.operator == name and session.token.startswith("udunsess_")
    status, who = session.request("GET", "/api/v1/whoami")
    assert status == 200 and who["via"] == f"session:{session.session_id}" and who["signed_requests"] is True

    from ca.policy import load_csr_bytes

    target = token.ca.issue(load_csr_bytes(software_csr("Held By Alice")), "client", requester="pytest")
    status, body = session.request("POST", f"/api/v1/certificates/{target.serial}/hold", {})
    assert status == 200 and body["status"] == "on-hold", body

    login = [e for e in _entries(admin_app) if e.action == "operator-login" and session.session_id in e.subject]
    assert login and login[-1].actor == f"operator:{name}"
    held = [e for e in _entries(admin_app) if e.action == "hold" and target.serial in e.subject][-1]
    assert held.actor == f"operator:{name}"
    signed = json.loads(held.details)["signed_request"]
    assert signed["certificate"] == cert.serial and f"/api/v1/certificates/{target.serial}/hold" in signed["message"]
    assert signed["body"] == "{}"                          # what was asked for, with the signature over it

    # Anyone can check the operator's signature over the request, outside udun (openssl).
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import serialization

    public = cx509.load_der_x509_certificate(cert.der).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    checked = openssl("dgst", "-sha256", "-verify", str(write(tmp_path / "pub.pem", public)), "-signature",
                      str(write(tmp_path / "sig.der", base64.b64decode(signed["signature"]))),
                      str(write(tmp_path / "msg", signed["message"].encode())))
    assert checked.returncode == 0 and b"Verified OK" in checked.stdout, checked.stderr


def test_changes_in_a_token_session_must_be_signed_once(admin_app: Flask, token: Token, operator: Any) -> None:
    from ca.policy import load_csr_bytes

    name, cert = operator
    session = _login(admin_app, token, cert)
    client = admin_app.test_client()
    serial = token.ca.issue(load_csr_bytes(software_csr("Not Held")), "client", requester="pytest").serial
    path = f"/api/v1/certificates/{serial}/hold"
    bearer = {"Authorization": f"Bearer {session.token}"}

    unsigned = client.post(path, json={}, headers=bearer)
    assert unsigned.status_code == 401 and "must be signed" in unsigned.get_json()["detail"]

    seen: dict[str, Any] = {}

    def capture(method: str, p: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        seen.update(method=method, path=p, body=body, headers=headers)
        return _sender(client)(method, p, body, headers)

    session.send = capture
    assert session.request("GET", f"/api/v1/certificates/{serial}")[0] == 200      # reads need no signature
    status, _ = session.request("POST", "/api/v1/crls", {})
    assert status == 201
    replayed = client.post("/api/v1/crls", data=seen["body"], headers={**seen["headers"],
                                                                       "Content-Type": "application/json"})
    assert replayed.status_code == 401 and "used already" in replayed.get_json()["detail"]
    # The same signature on another request (the path, or the body) does not verify.
    session.seq += 5
    moved = {**seen["headers"], "Udun-Request-Seq": str(session.seq)}
    other = client.post(path, json={}, headers=moved)
    assert other.status_code == 401 and "signature" in other.get_json()["detail"]
    assert token.ca.get(serial).status == "good"


def test_a_used_challenge_or_a_foreign_key_cannot_log_in(admin_app: Flask, token: Token, operator: Any) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from pkicore.adminsig import login_message

    _, cert = operator
    client = admin_app.test_client()
    ch = client.post("/api/v1/login/challenge", json={}).get_json()
    message = login_message(ch["challenge_id"], ch["nonce"], cert.serial)
    thief = ec.generate_private_key(ec.SECP256R1()).sign(message, ec.ECDSA(hashes.SHA256()))
    forged = client.post("/api/v1/login", json={"challenge_id": ch["challenge_id"], "serial": cert.serial,
                                                 "signature": base64.b64encode(thief).decode()})
    assert forged.status_code == 401
    from pkicore.algorithms import sign

    good, _ = sign(token.key(), message)
    again = client.post("/api/v1/login", json={"challenge_id": ch["challenge_id"], "serial": cert.serial,
                                               "signature": base64.b64encode(good).decode()})
    assert again.status_code == 401 and again.get_json()["detail"] == LOGIN_REFUSED     # single use
    garbage = client.post("/api/v1/login", json={"challenge_id": "x", "serial": cert.serial, "signature": "!!"})
    assert garbage.status_code == 400 and garbage.get_json()["field"] == "signature"


def test_a_revoked_or_held_certificate_cannot_log_in_and_its_session_ends(admin_app: Flask, token: Token,
                                                                        operator: Any) -> None:
    from ca.revocation import Revocation

    _, cert = operator
    session = _login(admin_app, token, cert)
    assert session.request("GET", "/api/v1/whoami")[0] == 200
    revocation = Revocation(token.ca)
    revocation.hold(cert.serial, actor="pytest")
    status, body = session.request("GET", "/api/v1/whoami")
    assert status == 401 and "on hold" in body["detail"]
    with pytest.raises(PkiError) as held:
        _login(admin_app, token, cert)
    assert held.value.kind is ErrorKind.UNAUTHORIZED and LOGIN_REFUSED in held.value.message
    revocation.release(cert.serial, actor="pytest")
    assert session.request("GET", "/api/v1/whoami")[0] == 200
    revocation.revoke(cert.serial, "superseded", None, actor="pytest")
    assert session.request("GET", "/api/v1/whoami")[0] == 401
    with pytest.raises(PkiError) as revoked:
        _login(admin_app, token, cert)
    assert LOGIN_REFUSED in revoked.value.message


def test_an_expired_certificate_cannot_log_in(admin_app: Flask, token: Token, operator: Any,
                                              caplog: pytest.LogCaptureFixture) -> None:
    from pkicore.adminsig import login_message
    from pkicore.algorithms import sign
    from pkicore.clock import fixed

    _, cert = operator
    ops: Operators = admin_app.extensions["udun-admin"]["operators"]
    later = Operators(ops.ca, fixed(cert.not_after + timedelta(minutes=1)))
    ch = later.challenge()
    signature, scheme = sign(token.key(), login_message(ch.id, ch.nonce, cert.serial))
    caplog.set_level("INFO", logger="udun.operators")
    with pytest.raises(PkiError) as expired:
        later.login(ch.id, cert.serial, base64.b64encode(signature).decode(), scheme.value)
    assert expired.value.kind is ErrorKind.UNAUTHORIZED and expired.value.message == LOGIN_REFUSED
    assert f"certificate {cert.serial} is expired" in caplog.text      # the reason: in the log, not the answer
    ch = ops.challenge()                         # the same signature scheme works today
    signature, scheme = sign(token.key(), login_message(ch.id, ch.nonce, cert.serial))
    assert ops.login(ch.id, cert.serial, base64.b64encode(signature).decode(), scheme.value).text


def test_logout_and_a_removed_certificate_end_sessions(admin_app: Flask, token: Token, operator: Any) -> None:
    name, cert = operator
    ops: Operators = admin_app.extensions["udun-admin"]["operators"]
    first = _login(admin_app, token, cert)
    assert first.request("POST", "/api/v1/logout", {})[0] == 200
    assert first.request("GET", "/api/v1/whoami")[0] == 401
    second = _login(admin_app, token, cert)
    other = token.certificate()
    ops.add_cert(name, other.serial, actor="pytest")         # still a credential of an admin left
    ops.remove_cert(cert.serial, actor="pytest")
    assert second.request("GET", "/api/v1/whoami")[0] == 401
    with pytest.raises(PkiError):
        _login(admin_app, token, cert)
    assert _login(admin_app, token, other).operator == name


def test_udun_operator_request_through_a_real_admin_service(settings: Any, token: Token, alice: str,
                                                            ca: Any) -> None:
    """`udun operator request`: the PIN is asked (UDUN_PIN here), the hold is signed by the
    token with the certificate stored on it, the session ends afterwards."""
    from ca.policy import load_csr_bytes
    from nodes import running_admin

    name = alice
    target = ca.issue(load_csr_bytes(software_csr("Held Through The CLI")), "client", requester="pytest")
    with running_admin(settings.home, "udun-test-admin-key-0123456789abcdef", settings.database_url) as admin:
        done = udun("operator", "request", "--url", admin.base, "--label", LABEL, "POST",
                    f"/api/v1/certificates/{target.serial}/hold", env={"UDUN_PIN": PIN})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "on-hold"
    assert ca.store.history(target.serial)[-1].actor == f"operator:{name}"
    ended = [e for e in _entries_of(ca) if e.action == "operator-logout" and e.actor == f"operator:{name}"]
    assert ended, "the CLI's session was not ended"


def _entries_of(ca: Any) -> list[Any]:
    from ca.storage.audit import AuditStore

    return AuditStore(ca.store).entries(None, 1_000_000)[-50:]
