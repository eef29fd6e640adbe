"""Issue 12 point 3, dual control, on the session's admin API: expiry, approvals arriving at
once (executed once), rejection, the bulk-revoke threshold, a policy change under its own
policy, issuance under a sensitive profile, and admins made only with a second admin."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from ca.approvals import Approvals
from ca.operators import Operators
from helpers import software_csr
from pkicore.errors import ErrorKind, PkiError


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def ctx(admin_app: Flask) -> dict[str, Any]:
    return admin_app.extensions["udun-admin"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def people(ctx: dict[str, Any]) -> dict[str, str]:
    """Four operators with tokens: three admins and an operator."""
    ops: Operators = ctx["operators"]
    out = {}
    for who, role in (("a1", "admin"), ("a2", "admin"), ("a3", "admin"), ("op", "operator")):
        name = _name(who)
        ops.add(name, role, actor="pytest")
        out[who] = name
        out[f"{who}-token"] = ops.issue_token(name, actor="pytest").text
    return out


def _auth(people: dict[str, str], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {people[who + '-token']}"}


def _cert(ctx: dict[str, Any]) -> Any:
    from ca.policy import load_csr_bytes

    return ctx["ca"].issue(load_csr_bytes(software_csr(_name("Approval"))), "client", requester="pytest")


def _executions(ctx: dict[str, Any], approval_id: str) -> list[str]:
    from ca.storage.audit import AuditStore

    return [e.action for e in AuditStore(ctx["ca"].store).entries(None, 1_000_000)
            if e.subject == f"approval/{approval_id}" and e.action in ("approval-execute", "approval-fail")]


def test_an_expired_request_never_executes(ctx: dict[str, Any], people: dict[str, str]) -> None:
    from pkicore.clock import fixed

    approvals: Approvals = ctx["approvals"]
    serial = _cert(ctx).serial
    rec = approvals.request("bulk-revoke", {"serials": [serial], "reason": "superseded"}, f"operator:{people['op']}")
    later = Approvals(ctx["ca"].store, fixed(approvals.clock() + timedelta(hours=25)), approvals.executors,
                      approvals.eligible)
    with pytest.raises(PkiError) as expired:
        later.approve(rec.id, f"operator:{people['a1']}", "admin", rec.params_sha256)
    assert expired.value.kind is ErrorKind.CONFLICT and "expired" in expired.value.message
    assert later.get(rec.id).state == "expired" and ctx["ca"].get(serial).status == "good"
    assert _executions(ctx, rec.id) == []


@pytest.mark.parametrize("required", [1, 2])
def test_approvals_arriving_at_once_execute_once(ctx: dict[str, Any], people: dict[str, str], required: int) -> None:
    """``required`` approvals wanted, three admins approve at the same moment: it runs once."""
    from dataclasses import replace

    approvals: Approvals = ctx["approvals"]
    policy = approvals.policy("bulk-revoke")
    approvals.set_policy(replace(policy, approvals=required), "pytest")
    try:
        for _ in range(5):
            serial = _cert(ctx).serial
            rec = approvals.request("bulk-revoke", {"serials": [serial], "reason": "superseded"},
                                    f"operator:{people['op']}")

            def approve(who: str) -> str:
                try:
                    return approvals.approve(rec.id, f"operator:{people[who]}", "admin", rec.params_sha256).state
                except PkiError as e:
                    return e.kind.value

            with ThreadPoolExecutor(3) as pool:
                outcomes = list(pool.map(approve, ("a1", "a2", "a3")))
            assert _executions(ctx, rec.id) == ["approval-execute"], outcomes
            final = approvals.get(rec.id)
            assert final.state == "executed" and final.result == {"revoked": [serial], "already_revoked": []}, final
            assert final.approved == required and len(final.votes) == required, (final, outcomes)
            assert ctx["ca"].get(serial).status == "revoked"
    finally:
        approvals.set_policy(policy, "pytest")


def test_the_bulk_revoke_threshold(admin_app: Flask, ctx: dict[str, Any], people: dict[str, str]) -> None:
    client = admin_app.test_client()
    threshold = ctx["approvals"].policy("bulk-revoke").threshold
    few = [_cert(ctx).serial for _ in range(2)]
    done = client.post("/api/v1/certificates/revoke", json={"serials": few, "reason": "superseded"},
                       headers=_auth(people, "op"))
    assert done.status_code == 200 and done.get_json()["result"]["revoked"] == few
    many = [_cert(ctx).serial for _ in range(threshold + 1)]
    held = client.post("/api/v1/certificates/revoke", json={"serials": many}, headers=_auth(people, "op"))
    assert held.status_code == 202 and held.headers["Location"].startswith("/api/v1/approvals/")
    assert {ctx["ca"].get(s).status for s in many} == {"good"}
    pending = held.get_json()["approval"]
    approved = client.post(f"/api/v1/approvals/{pending['approval_id']}/approve",
                           json={"params_sha256": pending["params_sha256"]}, headers=_auth(people, "a1"))
    assert approved.status_code == 200 and approved.get_json()["state"] == "executed"
    assert {ctx["ca"].get(s).status for s in many} == {"revoked"}
    unknown = client.post("/api/v1/certificates/revoke", json={"serials": [_cert(ctx).serial, "00ff"]},
                          headers=_auth(people, "op"))
    assert unknown.status_code == 404


def test_a_policy_change_under_its_own_policy(admin_app: Flask, ctx: dict[str, Any], people: dict[str, str]) -> None:
    client = admin_app.test_client()
    before = ctx["approvals"].policy("bulk-revoke")
    asked = client.post("/api/v1/approval-policies/bulk-revoke", json={"threshold": before.threshold + 7},
                        headers=_auth(people, "a1"))
    assert asked.status_code == 202
    assert ctx["approvals"].policy("bulk-revoke").threshold == before.threshold
    bad = client.post("/api/v1/approval-policies/bulk-revoke", json={"roles": ["nobody"]}, headers=_auth(people, "a1"))
    assert bad.status_code == 400 and bad.get_json()["field"] == "roles"
    operator = client.post("/api/v1/approval-policies/bulk-revoke", json={"threshold": 3}, headers=_auth(people, "op"))
    assert operator.status_code == 403
    pending = asked.get_json()["approval"]
    by_operator = client.post(f"/api/v1/approvals/{pending['approval_id']}/approve",
                              json={"params_sha256": pending["params_sha256"]}, headers=_auth(people, "op"))
    assert by_operator.status_code == 403 and "role admin" in by_operator.get_json()["detail"]
    done = client.post(f"/api/v1/approvals/{pending['approval_id']}/approve",
                       json={"params_sha256": pending["params_sha256"]}, headers=_auth(people, "a2"))
    try:
        assert done.status_code == 200 and done.get_json()["state"] == "executed", done.get_json()
        assert ctx["approvals"].policy("bulk-revoke").threshold == before.threshold + 7
        listed = {p["action"]: p for p in client.get("/api/v1/approval-policies",
                                                     headers=_auth(people, "op")).get_json()["items"]}
        assert listed["bulk-revoke"]["updated_by"] == f"approval:{pending['approval_id']}"
    finally:
        ctx["approvals"].set_policy(before, "pytest")


def test_issuing_under_a_sensitive_profile_waits_for_approval(admin_app: Flask, ctx: dict[str, Any],
                                                              people: dict[str, str]) -> None:
    from dataclasses import replace

    approvals: Approvals = ctx["approvals"]
    client = admin_app.test_client()
    policy = approvals.policy("sensitive-issue")
    approvals.set_policy(replace(policy, profiles=("client",)), "pytest")
    try:
        asked = client.post("/api/v1/certificates", data=software_csr(_name("Sensitive")), headers=_auth(people, "op"))
        assert asked.status_code == 202, asked.get_json()
        pending = asked.get_json()["approval"]
        assert pending["params"]["profile"] == "client" and "CERTIFICATE REQUEST" in pending["params"]["csr_pem"]
        done = client.post(f"/api/v1/approvals/{pending['approval_id']}/approve",
                           json={"params_sha256": pending["params_sha256"]}, headers=_auth(people, "a1"))
        assert done.status_code == 200 and done.get_json()["state"] == "executed"
        serial = done.get_json()["result"]["serial"]
        assert ctx["ca"].get(serial).requester == f"approval:{pending['approval_id']}"
    finally:
        approvals.set_policy(policy, "pytest")
    plain = client.post("/api/v1/certificates", data=software_csr(_name("Plain")), headers=_auth(people, "op"))
    assert plain.status_code == 201


def test_an_admin_is_made_only_with_a_second_admin(admin_app: Flask, ctx: dict[str, Any],
                                                   people: dict[str, str]) -> None:
    client = admin_app.test_client()
    name = _name("new-admin")
    asked = client.post("/api/v1/operators", json={"name": name, "role": "admin"}, headers=_auth(people, "a1"))
    assert asked.status_code == 202
    assert name not in {op.name for op in ctx["operators"].all()}
    auditor = _name("new-auditor")
    assert client.post("/api/v1/operators", json={"name": auditor, "role": "auditor"},
                       headers=_auth(people, "a1")).status_code == 201          # no approval for other roles
    promote = client.post(f"/api/v1/operators/{auditor}/role", json={"role": "admin"}, headers=_auth(people, "a1"))
    assert promote.status_code == 202
    pending = asked.get_json()["approval"]
    done = client.post(f"/api/v1/approvals/{pending['approval_id']}/approve",
                       json={"params_sha256": pending["params_sha256"]}, headers=_auth(people, "a2"))
    assert done.status_code == 200 and ctx["operators"].operator(name).role == "admin"
    withdrawn = client.post(f"/api/v1/approvals/{promote.get_json()['approval']['approval_id']}/reject",
                            json={"comment": "withdrawn"}, headers=_auth(people, "a1"))
    assert withdrawn.status_code == 200 and withdrawn.get_json()["state"] == "rejected"
    assert ctx["operators"].operator(auditor).role == "auditor"


def test_one_admin_cannot_approve_through_an_account_or_token_they_made(admin_app: Flask, ctx: dict[str, Any],
                                                                       people: dict[str, str]) -> None:
    """An insider with one admin credential: a helper account of theirs, or a token they made
    for another admin, does not give them the second approval."""
    client = admin_app.test_client()
    helper = _name("helper")
    assert client.post("/api/v1/operators", json={"name": helper, "role": "operator"},
                       headers=_auth(people, "a1")).status_code == 201
    made = client.post(f"/api/v1/operators/{helper}/tokens", json={}, headers=_auth(people, "a1"))
    assert made.status_code == 201
    for_admin = client.post(f"/api/v1/operators/{people['a2']}/tokens", json={}, headers=_auth(people, "a1"))
    assert for_admin.status_code == 403 and "only they" in for_admin.get_json()["detail"]

    many = [_cert(ctx).serial for _ in range(ctx["approvals"].policy("bulk-revoke").threshold + 1)]
    asked = client.post("/api/v1/certificates/revoke", json={"serials": many}, headers=_auth(people, "a1"))
    assert asked.status_code == 202
    pending = asked.get_json()["approval"]
    by_helper = client.post(f"/api/v1/approvals/{pending['approval_id']}/approve",
                            json={"params_sha256": pending["params_sha256"]},
                            headers={"Authorization": f"Bearer {made.get_json()['token']}"})
    assert by_helper.status_code == 403 and "made by the requester" in by_helper.get_json()["detail"]
    assert {ctx["ca"].get(s).status for s in many} == {"good"}
    shared = client.post("/api/v1/certificates/revoke", json={"serials": many},
                         headers={"Authorization": "Bearer udun-test-admin-key-0123456789abcdef"})
    assert shared.status_code == 403 and "no person" in shared.get_json()["detail"]
    done = client.post(f"/api/v1/approvals/{pending['approval_id']}/approve",
                       json={"params_sha256": pending["params_sha256"]}, headers=_auth(people, "op"))
    assert done.status_code == 200 and done.get_json()["state"] == "executed"


def test_an_operator_cannot_revoke_an_admins_login_certificate(admin_app: Flask, ctx: dict[str, Any],
                                                              people: dict[str, str]) -> None:
    client = admin_app.test_client()
    cert = _cert(ctx)
    ctx["operators"].add_cert(people["a3"], cert.serial, actor="pytest")
    for path in (f"/api/v1/certificates/{cert.serial}/hold", f"/api/v1/certificates/{cert.serial}/revoke"):
        refused = client.post(path, json={}, headers=_auth(people, "op"))
        assert refused.status_code == 403 and "only an admin" in refused.get_json()["detail"]
    bulk = client.post("/api/v1/certificates/revoke", json={"serials": [cert.serial]}, headers=_auth(people, "op"))
    assert bulk.status_code == 403
    assert ctx["ca"].get(cert.serial).status == "good"


def test_a_policy_cannot_switch_dual_control_off_or_name_roles_that_cannot_vote(
        admin_app: Flask, people: dict[str, str]) -> None:
    client = admin_app.test_client()
    off = client.post("/api/v1/approval-policies/policy-change", json={"approvals": 0}, headers=_auth(people, "a1"))
    assert off.status_code == 400 and off.get_json()["field"] == "approvals"
    auditors = client.post("/api/v1/approval-policies/ca-revoke", json={"roles": ["auditor"]},
                           headers=_auth(people, "a1"))
    assert auditors.status_code == 400 and auditors.get_json()["field"] == "roles"
    bad_time = client.post("/api/v1/authorities/issuing/revoke", json={"invalidity_date": "yesterday"},
                           headers=_auth(people, "a1"))
    assert bad_time.status_code == 400 and bad_time.get_json()["field"] == "invalidity_date"
