"""Issue 12's enrollment story (柜台激活码): a code made at the counter, used once by the
customer's token-made CSR, a second use refused, five wrong codes lock it, a CSR with
another subject refused; through the API, and through the CLI (`udun enrollment create` at
the counter, `udun enroll` with a SoftHSM token against a real `udun serve-admin`)."""
from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from flask import Flask

from helpers import CUSTOMER, PIN, SO_PIN, udun

OPERATOR = {"Authorization": "Bearer udun-test-admin-key-0123456789abcdef"}


def _subject(cn: str) -> str:
    return f"CN={cn},O=udun tests,C=CN"


def _csr_pem(subject_cn: str) -> str:
    """A CSR for _subject(subject_cn), its RDNs in the order the string names (as the token's)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    name = x509.Name.from_rfc4514_string(_subject(subject_cn))
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(
        ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def counter(admin_app: Flask) -> tuple[dict[str, str], dict[str, str]]:
    """Two operators at the counter (经办 and 复核): the maker and the checker, API tokens."""
    ops = admin_app.extensions["udun-admin"]["operators"]
    out = []
    for who in ("maker", "checker"):
        name = f"{who}-{uuid.uuid4().hex[:6]}"
        ops.add(name, "operator", actor="pytest")
        out.append({"Authorization": f"Bearer {ops.issue_token(name, actor='pytest').text}"})
    return out[0], out[1]


@pytest.fixture()
def made(admin_app: Flask, counter: tuple[dict[str, str], dict[str, str]]) -> dict[str, Any]:
    """An enrollment for a new customer made through the API, as an operator does at the
    counter, and approved by a second one (its code works only then: account-binding)."""
    maker, checker = counter
    cn = f"张三 {uuid.uuid4().hex[:6]}"
    account = f"6222{uuid.uuid4().int % 10**15:015d}"        # an account of a new customer
    client = admin_app.test_client()
    resp = client.post("/api/v1/enrollments", headers=maker, json={
        "subject": _subject(cn), "accounts": [account], "hours": 2})
    assert resp.status_code == 201 and resp.headers["Cache-Control"] == "no-store", resp.get_json()
    body = resp.get_json()
    assert body["state"] == "awaiting-approval" and body["accounts"] == [account]
    assert body["customer"] == f"ENR-{body['enrollment_id']}"
    approval = body.pop("approval")
    assert approval["action"] == "account-binding" and approval["params"]["enrollment"] == body["enrollment_id"]
    early = client.post("/api/v1/enroll", json={"code": body["code"], "csr": _csr_pem(cn)})
    assert early.status_code == 409 and "second operator" in early.get_json()["detail"]
    done = client.post(f"/api/v1/approvals/{approval['approval_id']}/approve", headers=checker,
                       json={"params_sha256": approval["params_sha256"]})
    assert done.status_code == 200 and done.get_json()["state"] == "executed", done.get_json()
    shown = client.get(f"/api/v1/enrollments/{body['enrollment_id']}", headers=checker).get_json()
    assert shown["state"] == "open"
    return {**body, "state": "open", "cn": cn}


def test_a_code_is_used_once(admin_app: Flask, made: dict[str, Any]) -> None:
    client = admin_app.test_client()
    opened = client.post("/api/v1/enroll/lookup", json={"code": made["code"].lower().replace("-", "")})
    assert opened.status_code == 200 and opened.get_json()["subject"] == made["subject"]
    done = client.post("/api/v1/enroll", json={"code": made["code"], "csr": _csr_pem(made["cn"])})
    assert done.status_code == 201, done.get_json()
    issued = done.get_json()
    assert "BEGIN CERTIFICATE" in issued["certificate_pem"] and issued["chain_pem"].count("BEGIN CERTIFICATE") == 2
    again = client.post("/api/v1/enroll", json={"code": made["code"], "csr": _csr_pem(made["cn"])})
    assert again.status_code == 409 and "used already" in again.get_json()["detail"]
    shown = client.get(f"/api/v1/enrollments/{made['enrollment_id']}", headers=OPERATOR).get_json()
    assert shown["state"] == "used" and shown["serial"] == issued["serial"]
    ca = admin_app.extensions["udun-admin"]["ca"]
    assert ca.get(issued["serial"]).requester == f"enrollment:{made['enrollment_id']}"
    assert made["code"] not in json.dumps(shown)


def test_five_wrong_codes_lock_it(admin_app: Flask, made: dict[str, Any]) -> None:
    client = admin_app.test_client()
    code = made["code"]
    wrong = code[:10] + ("0000" if code[10:14] != "0000" else "1111") + code[14:]
    answers = [client.post("/api/v1/enroll", json={"code": wrong, "csr": _csr_pem(made["cn"])}) for _ in range(5)]
    assert [a.status_code for a in answers] == [401] * 5
    assert "4 tries left" in answers[0].get_json()["detail"] and "locked now" in answers[4].get_json()["detail"]
    right = client.post("/api/v1/enroll", json={"code": code, "csr": _csr_pem(made["cn"])})
    assert right.status_code == 401 and "locked" in right.get_json()["detail"]
    shown = client.get(f"/api/v1/enrollments/{made['enrollment_id']}", headers=OPERATOR).get_json()
    assert (shown["state"], shown["attempts"], shown["serial"]) == ("locked", 5, None)
    garbage = client.post("/api/v1/enroll", json={"code": "not a code", "csr": "x"})
    assert garbage.status_code == 401


def test_a_csr_with_another_subject_is_refused_and_the_code_stays_usable(admin_app: Flask,
                                                                         made: dict[str, Any]) -> None:
    client = admin_app.test_client()
    other = client.post("/api/v1/enroll", json={"code": made["code"], "csr": _csr_pem("李四")})
    assert other.status_code == 422 and "is not this enrollment's" in other.get_json()["detail"]
    assert client.post("/api/v1/enroll", json={"code": made["code"], "csr": _csr_pem(made["cn"])}).status_code == 201


def test_an_expired_or_cancelled_code_is_refused(admin_app: Flask, made: dict[str, Any]) -> None:
    from datetime import timedelta

    from ca.enrollments import Enrollments
    from pkicore.clock import fixed
    from pkicore.errors import ErrorKind, PkiError

    ca = admin_app.extensions["udun-admin"]["ca"]
    later = Enrollments(ca, fixed(ca.clock() + timedelta(hours=3)))
    with pytest.raises(PkiError) as expired:
        later.open(made["code"])
    assert expired.value.kind is ErrorKind.UNAUTHORIZED and "expired" in expired.value.message
    client = admin_app.test_client()
    assert client.post(f"/api/v1/enrollments/{made['enrollment_id']}/cancel", json={},
                       headers=OPERATOR).status_code == 200
    cancelled = client.post("/api/v1/enroll/lookup", json={"code": made["code"]})
    assert cancelled.status_code == 401 and "locked" in cancelled.get_json()["detail"]


def test_enrollment_through_the_cli_with_a_token(settings: Any, ca: Any) -> None:
    """The counter makes the enrollment (`udun enrollment create`), the customer's `udun enroll`
    makes the key on a SoftHSM token, gets the certificate onto it, and a second run is refused."""
    from nodes import running_admin
    from signer import tokens

    label = f"enr-{uuid.uuid4().hex[:6]}"
    tokens.init(settings, label, PIN, SO_PIN)
    subject = _subject(f"王五 {uuid.uuid4().hex[:6]}")
    made = udun("enrollment", "create", "--subject", subject, "--customer", CUSTOMER, "--hours", "1")
    assert made.returncode == 0, made.stderr
    code = made.stdout.decode().strip()
    assert code not in made.stderr.decode()
    with running_admin(settings.home, "udun-test-admin-key-0123456789abcdef", settings.database_url) as admin:
        wrong = code[:10] + ("0000" if code[10:14] != "0000" else "1111") + code[14:]
        refused = udun("enroll", "--url", admin.base, "--label", label, env={"UDUN_PIN": PIN, "UDUN_ENROLL_CODE": wrong})
        assert refused.returncode == 2 and "4 tries left" in refused.stderr.decode(), refused.stderr
        assert wrong not in refused.stderr.decode() and code not in refused.stderr.decode()
        done = udun("enroll", "--url", admin.base, "--label", label, "--code", code, env={"UDUN_PIN": PIN})
        assert done.returncode == 0, done.stderr
        assert "a new key was made" in done.stderr.decode()
        again = udun("enroll", "--url", admin.base, "--label", label, "--code", code, env={"UDUN_PIN": PIN})
        assert again.returncode == 2 and "used already" in again.stderr.decode(), again.stderr
    shown = json.loads(udun("token", "show", "--label", label, "--json", env={"UDUN_PIN": PIN}).stdout)
    assert shown["keys"][0]["sensitive"] is True and shown["keys"][0]["extractable"] is False
    assert shown["certificates"][0]["subject"] == subject and len(shown["certificates"]) == 3
    listed = [json.loads(line) for line in udun("enrollment", "list", "--json").stdout.splitlines()]
    mine = next(e for e in listed if e["subject"] == subject)
    assert mine["state"] == "used" and ca.get(mine["serial"]).subject == subject
