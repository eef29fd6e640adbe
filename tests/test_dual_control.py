"""Issue 12's dual-control story (双人认证) on a CA of its own, through a real `udun serve-admin`:
a revoke of the issuing CA asked for by one admin does nothing until a second admin approves
it; the requester approving himself and the shared admin key are refused; a rejected
request never executes; every step is in the audit log."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cryptography import x509 as cx509

from helpers import PIN, SO_PIN, udun
from nodes import running_admin, shared_database_url

ADMIN_KEY = "udun-dual-control-key-0123456789abcdef"


def _call(base: str, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def own_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    home = tmp_path_factory.mktemp("dual-control")
    env = {"UDUN_HOME": str(home), "UDUN_CA_PIN": ""}
    init = udun("ca", "init", env=env, cwd=home)
    assert init.returncode == 0, init.stderr
    tokens = {}
    for name in ("alice", "bob", "carol"):
        assert udun("operator", "add", name, "--role", "admin", env=env).returncode == 0
        made = udun("operator", "token", "add", name, env=env)
        assert made.returncode == 0, made.stderr
        tokens[name] = made.stdout.decode().strip()
    # Bob also has his own token (柜台: key made on it, certificate of this CA, registered to him).
    token_env = {**env, "UDUN_PIN": PIN, "UDUN_SO_PIN": SO_PIN}
    for args in (("token", "init", "--label", "dc-bob"), ("token", "keygen", "--label", "dc-bob"),
                 ("token", "csr", "--label", "dc-bob", "--subject", "CN=Bob,O=udun tests,C=CN", "-o", "bob.csr"),
                 ("ca", "issue", "bob.csr", "-o", "bob.pem", "--chain"),
                 ("token", "import", "--label", "dc-bob", "bob.pem")):
        done = udun(*args, env=token_env, cwd=home)
        assert done.returncode == 0, (args, done.stderr)
    serial = format(cx509.load_pem_x509_certificate((home / "bob.pem").read_bytes()).serial_number, "x")
    assert udun("operator", "cert", "add", "bob", serial, env=env).returncode == 0
    return home, tokens


def test_revoking_the_issuing_ca_needs_a_second_admin(own_ca: tuple[Path, dict[str, str]]) -> None:
    home, tokens = own_ca
    alice, bob, carol = tokens["alice"], tokens["bob"], tokens["carol"]
    with running_admin(home, ADMIN_KEY, shared_database_url(home)) as admin:
        base = admin.base

        def root_crl_entries() -> int:
            status, crl = _call(base, alice, "POST", "/api/v1/crls?ca=root", {})
            assert status == 201, crl
            return int(crl["entries"])

        status, asked = _call(base, alice, "POST", "/api/v1/authorities/issuing/revoke", {"reason": "cACompromise"})
        assert status == 202, asked
        request = asked["approval"]
        assert (request["state"], request["requester"], request["required"]) == ("pending", "operator:alice", 1)
        assert root_crl_entries() == 0                                   # nothing happened yet

        status, refused = _call(base, alice, "POST", f"/api/v1/approvals/{request['approval_id']}/approve",
                                {"params_sha256": request["params_sha256"]})
        assert status == 403 and "requester cannot approve" in refused["detail"]
        status, refused = _call(base, ADMIN_KEY, "POST", f"/api/v1/approvals/{request['approval_id']}/approve",
                                {"params_sha256": request["params_sha256"]})
        assert status == 403 and "no person" in refused["detail"]
        status, refused = _call(base, bob, "POST", f"/api/v1/approvals/{request['approval_id']}/approve",
                                {"params_sha256": "00" * 32})
        assert status == 409 and "not what you were shown" in refused["detail"]
        assert root_crl_entries() == 0

        # A second request, rejected by carol: bob's approval afterwards is refused, nothing runs.
        status, other = _call(base, alice, "POST", "/api/v1/authorities/issuing/revoke", {"reason": "keyCompromise"})
        assert status == 202
        other_id = other["approval"]["approval_id"]
        status, rejected = _call(base, carol, "POST", f"/api/v1/approvals/{other_id}/reject", {"comment": "不同意"})
        assert status == 200 and rejected["state"] == "rejected"
        status, late = _call(base, bob, "POST", f"/api/v1/approvals/{other_id}/approve",
                             {"params_sha256": other["approval"]["params_sha256"]})
        assert status == 409 and "rejected" in late["detail"]
        assert root_crl_entries() == 0
        status, pending = _call(base, bob, "GET", "/api/v1/approvals?state=pending")
        assert [a["approval_id"] for a in pending["items"]] == [request["approval_id"]]

        # Bob approves from his own token through the CLI: his vote is signed by it.
        shown = udun("approval", "show", request["approval_id"], "--json", env={"UDUN_HOME": str(home)})
        assert json.loads(shown.stdout)["params_sha256"] == request["params_sha256"]
        voted = udun("approval", "approve", "--url", base, "--label", "dc-bob", request["approval_id"],
                     request["params_sha256"], "--comment", "确认: 密钥泄露", env={"UDUN_HOME": str(home), "UDUN_PIN": PIN})
        assert voted.returncode == 0, voted.stderr
        assert " executed " in voted.stdout.decode(), voted.stdout
        status, done = _call(base, bob, "GET", f"/api/v1/approvals/{request['approval_id']}")
        assert done["state"] == "executed" and done["votes"][0]["operator"] == "operator:bob", done
        serial = done["result"]["serial"]
        assert root_crl_entries() == 1                                   # the root's CRL lists the issuing CA
        status, shown = _call(base, bob, "GET", f"/api/v1/certificates/{serial}")
        assert shown["status"] == "revoked" and shown["revocation_reason"] == "cACompromise"
        assert shown["history"][-1]["actor"] == f"approval:{request['approval_id']}"
        status, again = _call(base, carol, "POST", f"/api/v1/approvals/{request['approval_id']}/approve",
                              {"params_sha256": request["params_sha256"]})
        assert status == 409 and "executed" in again["detail"]

        status, log = _call(base, bob, "GET", "/api/v1/audit?limit=500")
        steps = [(e["action"], e["actor"]) for e in log["items"] if e["subject"] in (
            f"approval/{request['approval_id']}", serial)]
        assert steps == [("approval-request", "operator:alice"), ("approval-approve", "operator:bob"),
                         ("revoke", f"approval:{request['approval_id']}"),
                         ("approval-execute", f"approval:{request['approval_id']}")], steps
        vote = next(e for e in log["items"] if e["action"] == "approval-approve"
                    and e["subject"] == f"approval/{request['approval_id']}")
        assert vote["details"]["signed_request"]["certificate"] == bob_serial(home)
        status, verdict = _call(base, bob, "GET", "/api/v1/audit/verify")
        assert verdict["ok"], verdict


def bob_serial(home: Path) -> str:
    return format(cx509.load_pem_x509_certificate((home / "bob.pem").read_bytes()).serial_number, "x")
