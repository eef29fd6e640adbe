"""Issue 12 point 2: operators with roles on the admin API. The endpoint x role matrix (401
without a credential, 403 for a role without the route's permission, 2xx for one with
it, each with a real request), the last admin, API tokens, and who the audit log names."""
from __future__ import annotations

import json
import uuid
from typing import Any, Callable

import pytest
from asn1crypto import pem
from flask import Flask
from flask.testing import FlaskClient

from ca.operators import ROLES, Operators
from helpers import software_csr
from webapi.auth import PERMISSION

PUBLIC = {"admin_apidoc.admin_openapi", "admin_operators.login_challenge", "admin_operators.login",
          "admin_enrollments.lookup", "admin_enrollments.enroll", "admin_renewal.renew", "admin_renewal.rekey",
          "static"}


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def ops(admin_app: Flask) -> Operators:
    return admin_app.extensions["udun-admin"]["operators"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def role_tokens(ops: Operators) -> dict[str, str]:
    """One operator with an API token per role (and a second admin, who could approve what
    the first asks for)."""
    ops.add(_unique("m-admin2"), "admin", actor="pytest")
    out = {}
    for role in ROLES:
        name = _unique(f"m-{role}")
        ops.add(name, role, actor="pytest")
        out[role] = ops.issue_token(name, actor="pytest").text
    return out


class Requests:
    """For each admin endpoint, a request that succeeds for a role allowed to make it,
    on objects made for that one request (a revoke needs a certificate not revoked yet)."""

    def __init__(self, admin_app: Flask, ops: Operators) -> None:
        self.admin_app = admin_app
        self.ca = admin_app.extensions["udun-admin"]["ca"]
        self.ops = ops

    def cert(self) -> Any:
        from ca.policy import load_csr_bytes

        return self.ca.issue(load_csr_bytes(software_csr(_unique("Matrix"))), "client", requester="pytest")

    def bank(self) -> str:
        from ca.banks import Banks

        name = _unique("mb")
        Banks(self.ca.store, self.ca.clock).add(name, None, actor="pytest")
        return name

    def bank_key_id(self) -> str:
        from ca.banks import Banks

        return Banks(self.ca.store, self.ca.clock).issue_key(self.bank(), actor="pytest").record.id

    def bank_cert_sha(self) -> str:
        from ca.banks import Banks

        return Banks(self.ca.store, self.ca.clock).add_cert(self.bank(), self.cert().der, actor="pytest").sha256

    def operator(self, role: str = "auditor") -> str:
        name = _unique("mo")
        self.ops.add(name, role, actor="pytest")
        return name

    def held(self) -> str:
        from ca.revocation import Revocation

        serial = self.cert().serial
        Revocation(self.ca).hold(serial, actor="pytest")
        return serial

    def build(self, endpoint: str) -> tuple[str, str, Any, set[int]]:
        """(method, path, body, the 2xx status wanted)."""
        def op_token() -> str:
            name = self.operator()
            return self.ops.issue_token(name, actor="pytest").id

        def op_cert() -> str:
            name = self.operator()
            return self.ops.add_cert(name, self.cert().serial, actor="pytest").serial

        table: dict[str, Callable[[], tuple[str, str, Any, set[int]]]] = {
            "admin.healthz": lambda: ("GET", "/healthz", None, {200}),
            "admin.metrics": lambda: ("GET", "/metrics", None, {200}),
            "admin.readyz": lambda: ("GET", "/readyz", None, {200}),
            "admin.issue": lambda: ("POST", "/api/v1/certificates", software_csr(_unique("Issued")), {201}),
            "admin.search": lambda: ("GET", "/api/v1/certificates?limit=2", None, {200}),
            "admin.show": lambda: ("GET", f"/api/v1/certificates/{self.cert().serial}", None, {200}),
            "admin.hold": lambda: ("POST", f"/api/v1/certificates/{self.cert().serial}/hold", {}, {200}),
            "admin.release": lambda: ("POST", f"/api/v1/certificates/{self.held()}/release", {}, {200}),
            "admin.revoke": lambda: ("POST", f"/api/v1/certificates/{self.cert().serial}/revoke",
                                     {"reason": "superseded"}, {200}),
            "admin.crl_now": lambda: ("POST", "/api/v1/crls", {}, {201}),
            "admin_banks.banks": lambda: ("GET", "/api/v1/banks", None, {200}),
            "admin_banks.add_bank": lambda: ("POST", "/api/v1/banks", {"name": _unique("nb")}, {201}),
            "admin_banks.show_bank": lambda: ("GET", f"/api/v1/banks/{self.bank()}", None, {200}),
            "admin_banks.disable_bank": lambda: ("POST", f"/api/v1/banks/{self.bank()}/disable", {}, {200}),
            "admin_banks.enable_bank": lambda: ("POST", f"/api/v1/banks/{self._disabled_bank()}/enable", {}, {200}),
            "admin_banks.add_key": lambda: ("POST", f"/api/v1/banks/{self.bank()}/keys", {}, {201}),
            "admin_banks.add_cert": lambda: ("POST", f"/api/v1/banks/{self.bank()}/certificates", {
                "certificate_pem": pem.armor("CERTIFICATE", self.cert().der).decode()}, {201}),
            "admin_banks.remove_cert": lambda: ("POST", f"/api/v1/bank-certificates/{self.bank_cert_sha()}/remove",
                                                {}, {200}),
            "admin_banks.rotate_key": lambda: ("POST", f"/api/v1/bank-keys/{self.bank_key_id()}/rotate", {}, {201}),
            "admin_banks.revoke_key": lambda: ("POST", f"/api/v1/bank-keys/{self.bank_key_id()}/revoke", {}, {200}),
            "admin_evidence.search": lambda: ("GET", "/api/v1/evidence?limit=2", None, {200}),
            "admin_operators.whoami": lambda: ("GET", "/api/v1/whoami", None, {200}),
            "admin_operators.operators": lambda: ("GET", "/api/v1/operators", None, {200}),
            "admin_operators.add_operator": lambda: ("POST", "/api/v1/operators",
                                                     {"name": _unique("no"), "role": "auditor"}, {201}),
            "admin_operators.show_operator": lambda: ("GET", f"/api/v1/operators/{self.operator()}", None, {200}),
            "admin_operators.set_role": lambda: ("POST", f"/api/v1/operators/{self.operator()}/role",
                                                 {"role": "operator"}, {200}),
            "admin_operators.disable": lambda: ("POST", f"/api/v1/operators/{self.operator()}/disable", {}, {200}),
            "admin_operators.enable": lambda: ("POST", f"/api/v1/operators/{self._disabled_operator()}/enable", {},
                                               {200}),
            "admin_operators.add_token": lambda: ("POST", f"/api/v1/operators/{self.operator()}/tokens", {}, {201}),
            "admin_operators.revoke_token": lambda: ("POST", f"/api/v1/operator-tokens/{op_token()}/revoke", {},
                                                     {200}),
            "admin_operators.add_cert": lambda: ("POST", f"/api/v1/operators/{self.operator()}/certificates",
                                                 {"serial": self.cert().serial}, {201}),
            "admin_operators.remove_cert": lambda: ("POST", f"/api/v1/operator-certificates/{op_cert()}/remove", {},
                                                    {200}),
            "admin_operators.audit_entries": lambda: ("GET", "/api/v1/audit?limit=3", None, {200}),
            "admin_operators.audit_verify": lambda: ("GET", "/api/v1/audit/verify", None, {200}),
            "admin_approvals.approvals": lambda: ("GET", "/api/v1/approvals?state=pending", None, {200}),
            "admin_approvals.show": lambda: ("GET", f"/api/v1/approvals/{self.request().id}", None, {200}),
            "admin_approvals.approve": lambda: self._approve(),
            "admin_approvals.reject": lambda: ("POST", f"/api/v1/approvals/{self.request().id}/reject", {}, {200}),
            "admin_approvals.policies": lambda: ("GET", "/api/v1/approval-policies", None, {200}),
            # Held back for approval (202); the matrix rejects what it asked for afterwards.
            "admin_approvals.set_policy": lambda: ("POST", "/api/v1/approval-policies/bulk-revoke",
                                                   {"threshold": 10}, {202}),
            "admin_approvals.revoke_issuing_ca": lambda: ("POST", "/api/v1/authorities/issuing/revoke", {}, {202}),
            "admin_approvals.revoke_many": lambda: ("POST", "/api/v1/certificates/revoke",
                                                    {"serials": [self.cert().serial], "reason": "superseded"}, {200}),
            "admin_enrollments.create": lambda: ("POST", "/api/v1/enrollments",
                                                 {"subject": f"CN={_unique('Enrolled')},O=udun tests,C=CN"}, {201}),
            "admin_enrollments.enrollments": lambda: ("GET", "/api/v1/enrollments?limit=2", None, {200}),
            "admin_enrollments.show": lambda: ("GET", f"/api/v1/enrollments/{self.enrollment()}", None, {200}),
            "admin_enrollments.cancel": lambda: ("POST", f"/api/v1/enrollments/{self.enrollment()}/cancel", {},
                                                 {200}),
            "admin_customers.add": lambda: ("POST", "/api/v1/customers",
                                            {"customer": _unique("C"), "name": "矩阵"}, {201}),
            "admin_customers.find": lambda: ("GET", "/api/v1/customers?limit=2", None, {200}),
            "admin_customers.show": lambda: ("GET", f"/api/v1/customers/{self.customer()}", None, {200}),
            # Held back for approval (account-binding); rejected by the matrix afterwards.
            "admin_customers.add_account": lambda: ("POST", f"/api/v1/customers/{self.customer()}/accounts",
                                                    {"account": self.account()}, {202}),
            "admin_customers.bind": lambda: ("POST", f"/api/v1/customers/{self.customer()}/certificates",
                                             {"serial": self.cert().serial}, {202}),
            "admin_customers.remove_account": lambda: self._remove_account(),
            "admin_limits.find": lambda: ("GET", "/api/v1/limits?scope=profile", None, {200}),
            "admin_limits.usage": lambda: ("GET", f"/api/v1/limits/usage?customer={self.customer()}", None, {200}),
            # Lower than the profile's: at once. (A raise waits: tests/webapi/test_limits_api.py.)
            "admin_limits.put": lambda: ("POST", "/api/v1/limits", {"scope": "customer", "subject": self.customer(),
                                                                    "currency": "CNY", "per_day": "100.00"}, {200}),
            "admin_limits.remove": lambda: self._remove_limit(),
            "admin_otp.enroll": lambda: ("POST", "/api/v1/otp", {"customer": self.customer()}, {201}),
            "admin_otp.find": lambda: ("GET", "/api/v1/otp", None, {200}),
            "admin_otp.unlock": lambda: ("POST", f"/api/v1/otp/{self.otp(locked=True)}/unlock", {}, {200}),
            "admin_otp.revoke": lambda: ("POST", f"/api/v1/otp/{self.otp()}/revoke", {}, {200}),
            # An API token has no session to end: the route answers 400 for it (a session's
            # logout is tested with a token login, tests/test_operator_login.py).
            "admin_operators.logout": lambda: ("POST", "/api/v1/logout", {}, {400}),
        }
        return table[endpoint]()

    def enrollment(self) -> str:
        from ca.enrollments import Enrollments

        rec, _ = Enrollments(self.ca).create(f"CN={_unique('Matrix')},O=udun tests,C=CN", actor="pytest")
        return rec.id

    def request(self) -> Any:
        """A pending bulk revoke of a fresh certificate, asked for by somebody else."""
        approvals = self.ca_approvals()
        return approvals.request("bulk-revoke", {"serials": [self.cert().serial], "reason": "superseded"},
                                 f"operator:{self.operator('operator')}")

    def customer(self, accounts: tuple[str, ...] = ()) -> str:
        from ca.customers import Customers

        cid = _unique("C")
        Customers(self.ca.store, self.ca.clock).add(cid, "矩阵客户", list(accounts), actor="pytest")
        return cid

    @staticmethod
    def account() -> str:
        return f"6212{uuid.uuid4().int % 10**15:015d}"

    def _remove_account(self) -> tuple[str, str, Any, set[int]]:
        account = self.account()
        return "DELETE", f"/api/v1/customers/{self.customer((account,))}/accounts/{account}", None, {200}

    def otp(self, locked: bool = False) -> str:
        from ca.otpcreds import OtpCredentials

        creds = OtpCredentials(self.ca.store, self.ca.clock, self.ca.settings)
        rec, _ = creds.enroll(self.customer(), actor="pytest")
        for _ in range(5 if locked else 0):
            creds.failed(rec.id, "pytest", "matrix")
        return rec.id

    def _remove_limit(self) -> tuple[str, str, Any, set[int]]:
        from ca.limits import Limit
        from ca.storage.limits import LimitStore

        cid = self.customer()
        # Above the profile's (as a second operator once approved): taking it away lowers it, at once.
        LimitStore(self.ca.store).put(Limit("customer", cid, "CNY", None, 200_000_000), self.ca.clock(), "pytest")
        return "DELETE", f"/api/v1/limits/customer/{cid}/CNY", None, {200}

    def ca_approvals(self) -> Any:
        return self.admin_app.extensions["udun-admin"]["approvals"]

    def _approve(self) -> tuple[str, str, Any, set[int]]:
        rec = self.request()
        return "POST", f"/api/v1/approvals/{rec.id}/approve", {"params_sha256": rec.params_sha256}, {200}

    def _disabled_bank(self) -> str:
        from ca.banks import Banks

        name = self.bank()
        Banks(self.ca.store, self.ca.clock).set_disabled(name, True, actor="pytest")
        return name

    def _disabled_operator(self) -> str:
        name = self.operator()
        self.ops.set_disabled(name, True, actor="pytest")
        return name


def _send(client: FlaskClient, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    if isinstance(body, bytes):
        return client.open(path, method=method, data=body, headers=headers)
    return client.open(path, method=method, json=body, headers=headers) if body is not None else \
        client.open(path, method=method, headers=headers)


def _secured(admin_app: Flask) -> list[tuple[str, str]]:
    return sorted((r.endpoint, getattr(admin_app.view_functions[r.endpoint], PERMISSION))
                  for r in admin_app.url_map.iter_rules() if r.endpoint not in PUBLIC)


def test_every_admin_route_names_a_permission_of_the_role_table(admin_app: Flask) -> None:
    from ca.operators import PERMISSIONS

    for endpoint, declared in _secured(admin_app):
        assert declared.startswith("operator:") and declared.removeprefix("operator:") in PERMISSIONS, endpoint


def test_endpoint_by_role_matrix(admin_app: Flask, ops: Operators, role_tokens: dict[str, str]) -> None:
    client = admin_app.test_client()
    requests = Requests(admin_app, ops)
    secured = _secured(admin_app)
    seen = []
    for endpoint, declared in secured:
        permission = declared.removeprefix("operator:")
        method, path, body, _ = requests.build(endpoint)
        anonymous = _send(client, method, path, body, {})
        assert anonymous.status_code == 401, (endpoint, anonymous.status_code)
        assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
        for role, token in role_tokens.items():
            method, path, body, wanted = requests.build(endpoint)       # fresh objects for each call
            resp = _send(client, method, path, body, {"Authorization": f"Bearer {token}"})
            if permission in ROLES[role]:
                assert resp.status_code in wanted, (endpoint, role, resp.status_code, resp.get_data()[:300])
                if resp.status_code == 202:                  # withdrawn: nothing the matrix asked for runs
                    requests.ca_approvals().reject(resp.get_json()["approval"]["approval_id"], "operator:pytest",
                                                   "admin")
            else:
                assert resp.status_code == 403, (endpoint, role, resp.status_code)
                assert resp.get_json()["code"] == "forbidden" and permission in resp.get_json()["detail"]
            seen.append((endpoint, role, resp.status_code))
    assert len(seen) == len(secured) * len(ROLES) and len(secured) >= 30


def test_a_wrong_expired_or_revoked_token_is_401(admin_app: Flask, ops: Operators) -> None:
    from datetime import timedelta

    from pkicore.clock import fixed

    client = admin_app.test_client()
    name = _unique("tok")
    ops.add(name, "auditor", actor="pytest")
    new = ops.issue_token(name, days=1, actor="pytest")
    ok = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {new.text}"})
    assert ok.status_code == 200 and ok.get_json()["operator"] == name and ok.get_json()["via"] == f"token:{new.id}"
    forged = new.text[:-4] + ("AAAA" if not new.text.endswith("AAAA") else "BBBB")
    assert client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    later = Operators(ops.ca, fixed(ops.clock() + timedelta(days=2)))
    with pytest.raises(Exception) as expired:
        later.authenticate(new.text)
    assert "expired" in str(expired.value)
    ops.revoke_token(new.id, actor="pytest")
    revoked = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {new.text}"})
    assert revoked.status_code == 401 and "revoked" in revoked.get_json()["detail"]


def test_a_disabled_operator_is_refused_at_once(admin_app: Flask, ops: Operators) -> None:
    client = admin_app.test_client()
    name = _unique("dis")
    ops.add(name, "operator", actor="pytest")
    auth = {"Authorization": f"Bearer {ops.issue_token(name, actor='pytest').text}"}
    assert client.get("/api/v1/whoami", headers=auth).status_code == 200
    ops.set_disabled(name, True, actor="pytest")
    refused = client.get("/api/v1/whoami", headers=auth)
    assert refused.status_code == 401 and "disabled" in refused.get_json()["detail"]


def test_the_audit_log_names_the_operator(admin_app: Flask, ops: Operators) -> None:
    from ca.storage.audit import AuditStore

    client = admin_app.test_client()
    name = _unique("aud")
    ops.add(name, "operator", actor="pytest")
    auth = {"Authorization": f"Bearer {ops.issue_token(name, actor='pytest').text}"}
    serial = Requests(admin_app, ops).cert().serial
    assert client.post(f"/api/v1/certificates/{serial}/hold", json={}, headers=auth).status_code == 200
    store = AuditStore(admin_app.extensions["udun-admin"]["ca"].store)
    last = store.entries(None, 100_000)[-5:]
    held = [e for e in last if e.action == "hold" and serial in e.subject]
    assert held and held[-1].actor == f"operator:{name}", [(e.action, e.actor, e.subject) for e in last]
    history = client.get(f"/api/v1/certificates/{serial}", headers=auth).get_json()["history"]
    assert history[-1]["actor"] == f"operator:{name}"


def _fresh_admin(ops: Operators) -> tuple[str, str, str]:
    name = _unique("adm")
    ops.add(name, "admin", actor="pytest")
    new = ops.issue_token(name, actor="pytest")
    return name, new.id, new.text


def test_the_last_admin_cannot_be_removed_or_locked_out(admin_app: Flask, ops: Operators) -> None:
    """Every admin but one is disabled (in this test's database the session's other tests
    made admins too), then the last one cannot be disabled, demoted or lose its last
    credential; a second admin makes each possible again."""
    from pkicore.errors import ErrorKind, PkiError

    last, token_id, token_text = _fresh_admin(ops)
    others = [op.name for op in ops.all() if op.role == "admin" and op.disabled_at is None and op.name != last]
    for name in others:
        ops.set_disabled(name, True, actor="pytest")
    try:
        for attempt in (lambda: ops.set_disabled(last, True, actor="pytest"),
                        lambda: ops.set_role(last, "auditor", actor="pytest"),
                        lambda: ops.revoke_token(token_id, actor="pytest")):
            with pytest.raises(PkiError) as refused:
                attempt()
            assert refused.value.kind is ErrorKind.CONFLICT, refused.value.message
        assert ops.operator(last).role == "admin" and ops.operator(last).disabled_at is None
        client = admin_app.test_client()
        # Through the API, disabling an admin waits for a second admin (dual control), and
        # there is none: refused at once.
        api = client.post(f"/api/v1/operators/{last}/disable", json={},
                          headers={"Authorization": f"Bearer {token_text}"})
        assert api.status_code == 409 and "approver" in api.get_json()["detail"], api.get_json()
        shared = client.post(f"/api/v1/operators/{last}/disable", json={},
                             headers={"Authorization": "Bearer udun-test-admin-key-0123456789abcdef"})
        assert shared.status_code == 403 and "no person" in shared.get_json()["detail"]
        second, _, _ = _fresh_admin(ops)
        ops.revoke_token(token_id, actor="pytest")          # the second admin can still log in
        ops.set_role(last, "auditor", actor="pytest")
        with pytest.raises(PkiError):
            ops.set_disabled(second, True, actor="pytest")
    finally:
        for name in others:
            ops.set_disabled(name, False, actor="pytest")


def test_concurrent_removals_of_the_last_two_admins_leave_one(admin_app: Flask, ops: Operators) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from pkicore.errors import PkiError

    a, _, _ = _fresh_admin(ops)
    b, _, _ = _fresh_admin(ops)
    others = [op.name for op in ops.all() if op.role == "admin" and op.disabled_at is None and op.name not in (a, b)]
    for name in others:
        ops.set_disabled(name, True, actor="pytest")
    try:
        def disable(name: str) -> str:
            try:
                ops.set_disabled(name, True, actor="pytest")
                return "done"
            except PkiError as e:
                return e.kind.value

        with ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(disable, (a, b)))
        assert outcomes[0] == "conflict" or outcomes.count("done") == 1, outcomes
        assert ops.store.count_admins() >= 1
    finally:
        for name in others:
            ops.set_disabled(name, False, actor="pytest")


def test_operator_cli(tmp_path: Any, empty_db: Any) -> None:
    """`udun operator add / token add / list --json / role / disable / show` on a CA
    machine, on a database of its own (the session's has other tests' admins)."""
    from helpers import udun

    env = {"UDUN_HOME": str(tmp_path), "UDUN_DATABASE_URL": empty_db.url.render_as_string(hide_password=False)}

    def run(*args: str) -> Any:
        proc = udun(*args, env=env)
        proc.out, proc.err = proc.stdout.decode(), proc.stderr.decode()
        return proc

    assert run("operator", "add", "carol", "--role", "admin").returncode == 0
    token = run("operator", "token", "add", "carol")
    assert token.returncode == 0 and token.out.startswith("udunop_") and token.out.strip() not in token.err
    listed = [json.loads(line) for line in run("operator", "list", "--json").out.splitlines()]
    assert [(o["name"], o["role"], o["state"]) for o in listed] == [("carol", "admin", "enabled")]
    refused = run("operator", "disable", "carol")
    assert refused.returncode == 2 and "last enabled admin" in refused.err, refused.err
    assert run("operator", "add", "dave", "--role", "auditor").returncode == 0
    no_credential = run("operator", "role", "dave", "admin")
    assert no_credential.returncode == 0, no_credential.err
    locked_out = run("operator", "disable", "carol")           # dave is an admin without any credential
    assert locked_out.returncode == 2 and "credential" in locked_out.err, locked_out.err
    assert run("operator", "token", "add", "dave", "--days", "7").returncode == 0
    assert run("operator", "disable", "carol").returncode == 0
    shown = json.loads(run("operator", "show", "carol", "--json").out)
    assert shown["state"] == "disabled" and shown["tokens"][0]["state"] == "active"
    assert token.out.strip() not in run("operator", "show", "carol").out
    assert "certificates:status" in run("operator", "permissions").out
