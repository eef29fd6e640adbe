"""Issue 9 points 3 and 4: several trusted CAs, one of them made with openssl alone.

A bank trusts its own udun CA and a partner CA (root + intermediate built by `openssl ca`,
its CRLs served over HTTP on loopback). Client keys live on SoftHSM tokens; the partner CA
certifies their CSRs. Through `udun verify`, the API (`udun serve` with UDUN_TRUST_FILE
holding both roots) and `udun evidence verify`: a partner payment passes, a revoked
partner client is REVOKED, a client of a CA nobody trusts is NO_CERTIFICATE_CHAIN_FOUND,
and a held / revoked partner intermediate is TRY_LATER / REVOKED naming that CA.
"""
from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import SAMPLE, running_server, udun, write
from opensslca import CrlServer, OpenSslCa

PIN = "multi-ca-pin-4417"
SO_PIN = "multi-ca-so-pin-2290"
CA_PIN = "multi-ca-ca-pin-8812"


class World:
    """One UDUN_HOME (our CA, three client tokens) and two openssl CAs."""

    def __init__(self, home: Path, server: CrlServer) -> None:
        self.home = home
        self.env = {"UDUN_HOME": str(home), "UDUN_PIN": PIN, "UDUN_SO_PIN": SO_PIN, "UDUN_CA_PIN": CA_PIN,
                    "UDUN_BASE_URL": "http://127.0.0.1:9"}
        self.partner = OpenSslCa(home / "partner", "Partner CA", crl_base_url=server.url)
        self.stranger = OpenSslCa(home / "stranger", "Stranger CA", crl_base_url=server.url, key_type="rsa")
        server.serve(self.partner)
        self.certs: dict[str, bytes] = {}

    def run(self, *args: str, ok: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        proc = udun(*args, env={**self.env, **(env or {})}, cwd=self.home)
        if ok:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def enroll(self, label: str, ca: OpenSslCa, subject: str) -> bytes:
        """A token key, its CSR, a certificate from ``ca`` with its chain on the token."""
        self.run("token", "init", "--label", label)
        self.run("token", "keygen", "--label", label)
        self.run("token", "csr", "--label", label, "--subject", subject, "-o", f"{label}.csr")
        cert = ca.issue((self.home / f"{label}.csr").read_bytes())
        write(self.home / f"{label}.pem", cert + ca.chain_pem)
        self.run("token", "import", "--label", label, f"{label}.pem")
        self.certs[label] = cert
        return cert

    def sign(self, label: str, name: str) -> Path:
        tx = dict(SAMPLE, tx_id=f"TX-MULTI-{name}")
        write(self.home / f"{name}.json", json.dumps(tx, ensure_ascii=False).encode())
        self.run("sign", "--label", label, f"{name}.json", "-o", f"{name}.p7s", "--yes")
        return self.home / f"{name}.p7s"

    def verify(self, p7s: Path, *extra: str) -> dict[str, Any]:
        proc = self.run("verify", str(p7s), "--trust", "trust.pem", "--json", *extra, ok=False)
        report = json.loads(proc.stdout)
        assert proc.returncode == (0 if report["status"] == "TOTAL_PASSED" else 1), proc.stderr
        return report  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with CrlServer() as server:
        w = World(tmp_path_factory.mktemp("multi-ca"), server)
        w.run("ca", "init")
        w.run("ca", "chain", "-o", "ours.pem")
        # Both roots (and their intermediates) are the bank's trust anchors; the stranger's are not.
        write(w.home / "trust.pem", (w.home / "ours.pem").read_bytes() + w.partner.chain_pem)
        w.enroll("bob", w.partner, "CN=鲍勃,O=Partner Bank,C=CN")
        w.enroll("carol", w.partner, "CN=Carol,O=Partner Bank,C=CN")
        w.enroll("eve", w.stranger, "CN=Eve,O=Stranger Bank,C=CN")
        # The partner CA's certificates pay from the sample payer's account (bound by their SHA-256).
        w.run("customer", "add", "C0001", "--name", "鲍勃", "--account", SAMPLE["payer"]["account"])
        for label in ("bob", "carol", "eve"):
            w.run("customer", "bind", "C0001", "--cert", f"{label}.pem")
        w.partner.revoke(w.certs["carol"], "keyCompromise")
        w.partner.crl("issuing")
        yield w


def test_udun_verify_under_several_trusted_cas(world: World) -> None:
    good = world.verify(world.sign("bob", "bob-1"))
    assert good["status"] == "TOTAL_PASSED", good["message"]
    # Status of the signer and of the partner's intermediate, each fetched from its CRL URL.
    assert [(s["status"], s["source"]) for s in good["statuses"]] == [("good", "CRL"), ("good", "CRL")]
    assert good["statuses"][1]["certificate"].startswith("CN=Partner CA Issuing")
    revoked = world.verify(world.sign("carol", "carol-1"))
    assert (revoked["status"], revoked["sub_indication"]) == ("TOTAL_FAILED", "REVOKED"), revoked["message"]
    assert "the signer CN=Carol" in revoked["message"] and "keyCompromise" in revoked["message"]
    stranger = world.verify(world.sign("eve", "eve-1"))
    assert (stranger["status"], stranger["sub_indication"]) == ("INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND")
    # The same with the CRLs given as files (one PEM file holding both), nothing fetched.
    both = world.home / "partner-crls.pem"
    write(both, b"".join(_pem_crl(world.partner.crl_path(w).read_bytes()) for w in ("issuing", "root")))
    offline = world.verify(world.home / "bob-1.p7s", "--offline", "--crl", str(both))
    assert offline["status"] == "TOTAL_PASSED", offline["message"]
    # Trusting only our own CA, the partner's payment has no path.
    alone = world.run("verify", str(world.home / "bob-1.p7s"), "--trust", "ours.pem", "--json", ok=False)
    assert json.loads(alone.stdout)["sub_indication"] == "NO_CERTIFICATE_CHAIN_FOUND"


def _pem_crl(der: bytes) -> bytes:
    from asn1crypto import pem

    return pem.armor("X509 CRL", der)


def _post(base: str, body: bytes, auth: dict[str, str]) -> dict[str, Any]:
    req = urllib.request.Request(f"{base}/api/v1/verify", data=body,
                                 headers={"Content-Type": "application/pkcs7-mime", **auth})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def test_api_and_evidence_under_several_trusted_cas(world: World) -> None:
    payments = {label: world.sign(label, f"{label}-api").read_bytes() for label in ("bob", "carol", "eve")}
    world.run("bank", "add", "multi-bank")
    auth = {"Authorization": "Bearer " + world.run("bank", "key", "add", "multi-bank").stdout.decode().strip()}
    with running_server(world.home, workers=1,
                        extra_env={"UDUN_TRUST_FILE": str(world.home / "trust.pem")}) as (base, _proc):
        good = _post(base, payments["bob"], auth)
        assert good["status"] == "TOTAL_PASSED" and good["evidence_id"], good
        assert [s["status"] for s in good["statuses"]] == ["good", "good"]
        revoked = _post(base, payments["carol"], auth)
        assert (revoked["sub_indication"], revoked.get("evidence_id")) == ("REVOKED", None), revoked
        stranger = _post(base, payments["eve"], auth)
        assert stranger["sub_indication"] == "NO_CERTIFICATE_CHAIN_FOUND", stranger
        req = urllib.request.Request(f"{base}/api/v1/evidence/{good['evidence_id']}",
                                     headers=auth)
        with urllib.request.urlopen(req, timeout=30) as resp:
            bundle = write(world.home / "bob.zip", resp.read())
    checked = world.run("evidence", "verify", str(bundle), "--trust", "trust.pem", ok=False)
    assert checked.returncode == 0 and b"OK" in checked.stdout, checked.stdout + checked.stderr


def test_held_then_revoked_partner_intermediate(world: World) -> None:
    """A payment under a held / revoked issuing CA: TRY_LATER / REVOKED naming that CA."""
    partner = world.partner
    p7s = world.sign("bob", "bob-ca-hold")
    partner.hold(partner.issuing_pem)
    partner.crl("root")
    held = world.verify(p7s)
    assert (held["status"], held["sub_indication"]) == ("INDETERMINATE", "TRY_LATER"), held["message"]
    assert "the CA CN=Partner CA Issuing" in held["message"] and "suspended" in held["message"]
    assert [s["status"] for s in held["statuses"]] == ["unchecked", "on_hold"]
    partner.release(partner.issuing_pem)
    partner.crl("root")
    assert world.verify(p7s)["status"] == "TOTAL_PASSED"
    partner.revoke(partner.issuing_pem, "CACompromise")
    partner.crl("root")
    revoked = world.verify(world.sign("bob", "bob-ca-revoked"))
    assert (revoked["status"], revoked["sub_indication"]) == ("TOTAL_FAILED", "REVOKED"), revoked["message"]
    assert "the CA CN=Partner CA Issuing" in revoked["message"] and "cACompromise" in revoked["message"]
    # And `udun cert verify --revocation hard` names the same certificate and rule.
    proc = world.run("cert", "verify", f"{world.home}/bob.pem", "--trust", "trust.pem", "--revocation", "hard",
                     "--json", ok=False)
    verdict = json.loads(proc.stdout)
    assert proc.returncode == 1 and verdict["failing_certificate"]["position"] == "intermediate 1", verdict
    assert verdict["rule"].startswith("RFC 5280 §6.3.3"), verdict
