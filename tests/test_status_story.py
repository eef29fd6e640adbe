"""Issue 4 acceptance 4: issue -> sign -> verify -> hold -> verify -> release -> verify ->
revoke -> verify, through the API and through `udun verify`, each with the right answer."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from helpers import CUSTOMER, SoftwareKey, now, sample_tx, udun, write


def _api(client, cms: bytes) -> dict:  # type: ignore[no-untyped-def,type-arg]
    resp = client.post("/api/v1/verify", data=cms, content_type="application/pkcs7-mime")
    assert resp.status_code == 200
    return resp.get_json()  # type: ignore[no-any-return]


def _cli(cms_path: Path) -> dict:  # type: ignore[type-arg]
    proc = udun("verify", str(cms_path), "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == (0 if report["status"] == "TOTAL_PASSED" else 1)
    return report  # type: ignore[no-any-return]


def test_status_story(ca, client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ca.revocation import Revocation
    from pkicore.cms_build import sign_data
    from pkicore.x509build import build_csr, parse_name

    rev = Revocation(ca)
    key = SoftwareKey()
    rec = ca.issue(build_csr(key, parse_name("CN=Story Customer,O=udun tests,C=CN")), customer=CUSTOMER)

    def both(name: str) -> list[dict]:  # type: ignore[type-arg]
        """A payment signed now, through the API and through `udun verify`. The API accepts
        a tx_id once (then keeps evidence), so each step signs a payment of its own."""
        api = sign_data(key, rec.der, ca.chain_der(), sample_tx().canonical_bytes(), signing_time=now())
        cli = sign_data(key, rec.der, ca.chain_der(), sample_tx().canonical_bytes(), signing_time=now())
        return [_api(client, api), _cli(write(tmp_path / f"{name}.p7s", cli))]

    for r in both("issued"):
        assert (r["status"], r["sub_indication"]) == ("TOTAL_PASSED", None)
        assert r["revocation"]["source"] == "OCSP" and r["revocation"]["status"] == "good"
        assert r["revocation"]["this_update"] and r["revocation"]["age_seconds"] >= 0

    rev.hold(rec.serial)
    for r in both("held"):
        assert (r["status"], r["sub_indication"]) == ("INDETERMINATE", "TRY_LATER")
        assert "suspended" in r["message"] and r["revocation"]["status"] == "on_hold"

    rev.release(rec.serial)
    for r in both("released"):
        assert (r["status"], r["sub_indication"]) == ("TOTAL_PASSED", None)

    # Signed before the revocation (by its own account), checked after it.
    before = [sign_data(key, rec.der, ca.chain_der(), sample_tx().canonical_bytes(),
                        signing_time=now() - timedelta(seconds=2)) for _ in range(2)]
    rev.revoke(rec.serial, "keyCompromise")
    for r in (_api(client, before[0]), _cli(write(tmp_path / "before.p7s", before[1]))):
        # Nothing but the signer's own claim says it was signed before the revocation.
        assert (r["status"], r["sub_indication"]) == ("INDETERMINATE", "REVOKED_NO_POE")
        assert r["revocation"]["reason"] == "keyCompromise"
        assert r.get("evidence_id") is None

    later = sign_data(key, rec.der, ca.chain_der(), sample_tx().canonical_bytes(),
                      signing_time=now() + timedelta(seconds=1))
    for r in (_api(client, later), _cli(write(tmp_path / "later.p7s", later))):
        # The signer itself claims to have signed after the revocation.
        assert (r["status"], r["sub_indication"]) == ("TOTAL_FAILED", "REVOKED")


def test_no_fresh_status_is_try_later(ca, chain_pem: Path, tmp_path: Path, enrolled) -> None:  # type: ignore[no-untyped-def]
    """With only a stale CRL (or none reachable), the answer is INDETERMINATE TRY_LATER."""
    from asn1crypto import crl as asn1crl

    from ca.authority import CertificateAuthority
    from ca.revocation import Revocation
    from helpers import PIN
    from pkicore.clock import fixed
    from signer.signing import sign_transaction

    cms = write(tmp_path / "tx.p7s", sign_transaction(ca.settings, "user-ec", PIN, sample_tx()))
    old = CertificateAuthority(ca.settings, ca.store, clock=fixed(now() - timedelta(days=3)))
    stale = Revocation(old).publish("issuing").der
    assert asn1crl.CertificateList.load(stale)["tbs_cert_list"]["next_update"].native < now()
    root_crl = write(tmp_path / "root.crl", Revocation(ca).current("root").der)
    proc = udun("verify", str(cms), "--trust", str(chain_pem), "--crl", str(write(tmp_path / "old.crl", stale)),
                "--crl", str(root_crl), "--json")
    report = json.loads(proc.stdout)
    assert (report["status"], report["sub_indication"]) == ("INDETERMINATE", "TRY_LATER") and proc.returncode == 1
    assert "the signer" in report["message"] and "not recent enough" in report["message"], report["message"]
    fresh = write(tmp_path / "new.crl", Revocation(ca).current("issuing").der)
    # The issuing CA's own status (the root's CRL) is needed too: without it, TRY_LATER naming the CA.
    proc = udun("verify", str(cms), "--trust", str(chain_pem), "--crl", str(fresh), "--json")
    report = json.loads(proc.stdout)
    assert report["sub_indication"] == "TRY_LATER" and "the CA" in report["message"], report["message"]
    assert report["statuses"][1]["status"] == "unusable" and report["statuses"][0]["status"] == "unchecked"
    proc = udun("verify", str(cms), "--trust", str(chain_pem), "--crl", str(fresh), "--crl", str(root_crl), "--json")
    report = json.loads(proc.stdout)
    assert report["status"] == "TOTAL_PASSED" and report["revocation"]["source"] == "CRL", report["message"]
    assert [s["source"] for s in report["statuses"]] == ["CRL", "CRL"]
    offline = udun("verify", str(cms), "--trust", str(chain_pem), "--offline", "--json")
    assert json.loads(offline.stdout)["sub_indication"] == "TRY_LATER"
