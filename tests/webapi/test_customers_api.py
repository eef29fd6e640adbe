"""Issue 13 point 1 on the admin API: customers and account binding under dual control. An
operator with one credential cannot make any certificate pay from a customer's account:
every way of binding waits for a second operator (account-binding policy)."""
from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask

from helpers import SoftwareKey, now, sample_tx


def _account() -> str:
    return f"6213{uuid.uuid4().int % 10**15:015d}"


@pytest.fixture(scope="module")
def staff(admin_app: Flask) -> dict[str, dict[str, str]]:
    """Two operators (maker, checker) and an auditor, API tokens."""
    ops = admin_app.extensions["udun-admin"]["operators"]
    out = {}
    for who, role in (("maker", "operator"), ("checker", "operator"), ("auditor", "auditor")):
        name = f"{who}-{uuid.uuid4().hex[:6]}"
        ops.add(name, role, actor="pytest")
        out[who] = {"Authorization": f"Bearer {ops.issue_token(name, actor='pytest').text}"}
    return out


def _approve(admin_app: Flask, who: dict[str, str], pending: dict[str, Any]) -> Any:
    approval = pending["approval"]
    return admin_app.test_client().post(f"/api/v1/approvals/{approval['approval_id']}/approve", headers=who,
                                        json={"params_sha256": approval["params_sha256"]})


def _csr_and_key() -> tuple[bytes, SoftwareKey]:
    from asn1crypto import pem

    from pkicore.x509build import build_csr, parse_name

    key = SoftwareKey()
    der = build_csr(key, parse_name(f"CN=Insider {uuid.uuid4().hex[:6]},O=udun tests,C=CN"))
    return pem.armor("CERTIFICATE REQUEST", der), key


def _pay(client: Any, ca: Any, key: SoftwareKey, cert_der: bytes, account: str) -> dict[str, Any]:
    from pkicore.cms_build import sign_data

    cms = sign_data(key, cert_der, ca.chain_der(), sample_tx(payer={"account": account}).canonical_bytes(),
                    signing_time=now())
    resp = client.post("/api/v1/verify", data=cms, content_type="application/pkcs7-mime")
    assert resp.status_code == 200
    return resp.get_json()  # type: ignore[no-any-return]


def test_maker_and_checker_bind_a_customer_and_issue_for_it(admin_app: Flask, staff: dict[str, dict[str, str]],
                                                           ca: Any, client: Any) -> None:
    admin = admin_app.test_client()
    cid, account = f"C-{uuid.uuid4().hex[:8]}", _account()
    made = admin.post("/api/v1/customers", headers=staff["maker"],
                      json={"customer": cid, "name": "钱七", "accounts": [account]})
    assert made.status_code == 202 and made.get_json()["approval"]["action"] == "account-binding"
    assert admin.get(f"/api/v1/customers/{cid}", headers=staff["auditor"]).status_code == 404   # not yet
    done = _approve(admin_app, staff["checker"], made.get_json())
    assert done.status_code == 200 and done.get_json()["state"] == "executed", done.get_json()
    shown = admin.get(f"/api/v1/customers/{cid}", headers=staff["auditor"]).get_json()
    assert shown["accounts"] == [account] and shown["certificates"] == []

    csr, key = _csr_and_key()
    asked = admin.post(f"/api/v1/certificates?customer={cid}", data=csr, headers=staff["maker"])
    assert asked.status_code == 202, asked.get_json()
    issued = _approve(admin_app, staff["checker"], asked.get_json()).get_json()
    serial = issued["result"]["serial"]
    assert issued["state"] == "executed" and issued["result"]["customer"] == cid
    assert admin.get(f"/api/v1/customers/{cid}", headers=staff["auditor"]).get_json()["certificates"] == [serial]
    report = _pay(client, ca, key, ca.get(serial).der, account)
    assert report["status"] == "TOTAL_PASSED", report["message"]


def test_one_operator_cannot_make_their_key_pay_from_a_victims_account(admin_app: Flask, ca: Any, client: Any,
                                                                      staff: dict[str, dict[str, str]]) -> None:
    """The insider has a certificate of their own (bound to no customer) and an operator's
    token; every way to reach the victim's account waits for somebody else, and they cannot
    approve it themselves."""
    from ca.customers import Customers

    admin = admin_app.test_client()
    customers = Customers(ca.store, ca.clock)
    victim_account = _account()
    victim = f"C-{uuid.uuid4().hex[:8]}"
    customers.add(victim, "受害人", [victim_account], actor="pytest")
    csr, key = _csr_and_key()
    from ca.policy import load_csr_bytes

    own = ca.issue(load_csr_bytes(csr), requester="operator:insider")
    attempts = [
        admin.post(f"/api/v1/customers/{victim}/certificates", headers=staff["maker"], json={"serial": own.serial}),
        admin.post(f"/api/v1/certificates?customer={victim}", data=_csr_and_key()[0], headers=staff["maker"]),
        admin.post("/api/v1/enrollments", headers=staff["maker"], json={
            "subject": f"CN=Insider {uuid.uuid4().hex[:6]},O=udun tests,C=CN", "customer": victim}),
    ]
    assert [a.status_code for a in attempts] == [202, 202, 201]
    assert attempts[2].get_json()["state"] == "awaiting-approval"
    for attempt in attempts:
        refused = _approve(admin_app, staff["maker"], attempt.get_json())
        assert refused.status_code == 403 and "own request" in refused.get_json()["detail"]
    # Nothing was bound or issued for the victim; the insider's key pays from nothing.
    assert customers.get(victim).certificates == ()
    report = _pay(client, ca, key, own.der, victim_account)
    assert (report["status"], report["sub_indication"]) == ("TOTAL_FAILED", "ACCOUNT_NOT_BOUND")

    # Binding the victim's account to a customer of the insider's fails even when approved.
    mine = f"C-{uuid.uuid4().hex[:8]}"
    customers.add(mine, "内鬼", [], actor="pytest")
    asked = admin.post(f"/api/v1/customers/{mine}/accounts", headers=staff["maker"],
                       json={"account": victim_account})
    assert asked.status_code == 202
    failed = _approve(admin_app, staff["checker"], asked.get_json()).get_json()
    assert failed["state"] == "failed" and failed["result"]["code"] == "conflict"
    assert customers.get(mine).accounts == () and customers.get(victim).accounts == (victim_account,)


def test_bad_input_and_what_needs_no_second_operator(admin_app: Flask, staff: dict[str, dict[str, str]],
                                                    ca: Any) -> None:
    admin = admin_app.test_client()
    cid, account = f"C-{uuid.uuid4().hex[:8]}", _account()
    # A customer without accounts grants nothing: made at once.
    made = admin.post("/api/v1/customers", headers=staff["maker"], json={"customer": cid, "name": "孙八"})
    assert made.status_code == 201 and made.headers["Location"] == f"/api/v1/customers/{cid}"
    again = admin.post("/api/v1/customers", headers=staff["maker"], json={"customer": cid, "name": "孙八"})
    assert again.status_code == 409
    for body in ({"customer": "C 1", "name": "x"}, {"customer": cid, "name": ""},
                 {"customer": cid, "name": "x", "accounts": ["62-22"]}, {"customer": cid, "name": "x", "extra": 1},
                 {"customer": cid, "name": "x", "accounts": [account, account]}):
        bad = admin.post("/api/v1/customers", headers=staff["maker"], json=body)
        assert bad.status_code == 400 and bad.get_json()["code"] == "bad-input", body
    assert admin.post("/api/v1/customers/C-nobody/accounts", headers=staff["maker"],
                      json={"account": account}).status_code == 404
    assert admin.post("/api/v1/certificates?customer=C-nobody", data=_csr_and_key()[0],
                      headers=staff["maker"]).status_code == 404
    assert admin.get("/api/v1/customers?limit=0", headers=staff["auditor"]).status_code == 400
    # Taking an account away only restricts: at once.
    from ca.customers import Customers

    Customers(ca.store, ca.clock).add_account(cid, account, actor="pytest")
    gone = admin.delete(f"/api/v1/customers/{cid}/accounts/{account}", headers=staff["maker"])
    assert gone.status_code == 200 and gone.get_json()["accounts"] == []
    assert admin.delete(f"/api/v1/customers/{cid}/accounts/{account}", headers=staff["maker"]).status_code == 404
    found = admin.get(f"/api/v1/customers?after={cid[:-1]}&limit=500", headers=staff["auditor"]).get_json()
    assert cid in [c["customer"] for c in found["items"]]


def test_an_enrollment_for_new_accounts_binds_nothing_until_approved(admin_app: Flask, ca: Any,
                                                                    staff: dict[str, dict[str, str]]) -> None:
    """The approver is shown the accounts; the customer and its accounts exist only once
    approved, so a rejected (or never approved) enrollment holds no account."""
    from ca.customers import Customers

    admin = admin_app.test_client()
    customers = Customers(ca.store, ca.clock)
    account = _account()
    made = admin.post("/api/v1/enrollments", headers=staff["maker"], json={
        "subject": f"CN=New {uuid.uuid4().hex[:6]},O=udun tests,C=CN", "accounts": [account]})
    assert made.status_code == 201
    body = made.get_json()
    assert body["approval"]["params"]["accounts"] == [account]
    assert customers.find(account=account) == []                   # nothing bound yet
    rejected = admin.post(f"/api/v1/approvals/{body['approval']['approval_id']}/reject", headers=staff["checker"])
    assert rejected.status_code == 200
    assert customers.find(account=account) == []
    again = admin.post("/api/v1/enrollments", headers=staff["maker"], json={
        "subject": f"CN=New {uuid.uuid4().hex[:6]},O=udun tests,C=CN", "accounts": [account]})
    done = _approve(admin_app, staff["checker"], again.get_json()).get_json()
    assert done["state"] == "executed", done
    assert [c.id for c in customers.find(account=account)] == [f"ENR-{again.get_json()['enrollment_id']}"]
    taken = admin.post("/api/v1/enrollments", headers=staff["maker"], json={
        "subject": f"CN=New {uuid.uuid4().hex[:6]},O=udun tests,C=CN", "accounts": [account]})
    assert taken.status_code == 409                                # an account of somebody's: refused at once


def test_the_shared_key_cannot_leave_a_half_made_enrollment(admin_app: Flask, ca: Any) -> None:
    from ca.storage.schema import enrollments

    import sqlalchemy as sa

    admin = admin_app.test_client()
    with ca.store.engine.connect() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(enrollments)).scalar()
    refused = admin.post("/api/v1/enrollments", headers={"Authorization": "Bearer udun-test-admin-key-0123456789abcdef"},
                         json={"subject": "CN=Shared,O=udun tests,C=CN", "accounts": [_account()]})
    assert refused.status_code == 403
    with ca.store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(enrollments)).scalar() == before


def test_a_bind_request_is_checked_before_anybody_is_asked(admin_app: Flask, ca: Any,
                                                          staff: dict[str, dict[str, str]]) -> None:
    from asn1crypto import pem

    from ca.customers import Customers

    admin = admin_app.test_client()
    customers = Customers(ca.store, ca.clock)
    cid = f"C-{uuid.uuid4().hex[:8]}"
    customers.add(cid, "冯十二", [], actor="pytest")
    from ca.policy import load_csr_bytes

    rec = ca.issue(load_csr_bytes(_csr_and_key()[0]), customer=cid)
    path = f"/api/v1/customers/{cid}/certificates"
    chain = pem.armor("CERTIFICATE", rec.der).decode() + "".join(pem.armor("CERTIFICATE", d).decode()
                                                                 for d in ca.chain_der())
    for body, status in (({"serial": "zz"}, 400), ({"serial": "0f" * 21}, 400), ({"serial": "abc"}, 404),
                         ({"serial": rec.serial}, 409), ({"certificate_pem": chain}, 400),
                         ({"serial": rec.serial, "certificate_pem": chain}, 400)):
        answer = admin.post(path, headers=staff["maker"], json=body)
        assert answer.status_code == status, (body, answer.get_json())
    unknown = admin.post(f"/api/v1/certificates?customer={cid}&profile=tsa", data=_csr_and_key()[0],
                         headers=staff["maker"])
    assert unknown.status_code == 400
