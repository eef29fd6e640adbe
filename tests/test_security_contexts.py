"""Issue 10: processes by security context, and nobody can mint a responder or a TSA.

A fresh UDUN_HOME is set up through the CLI where the CA key is; then the CA PIN is
taken away (file removed, variable unset) and `udun serve` must still answer everything
a bank needs: verify, evidence, OCSP, TSA, CRL and CA certificate downloads.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from helpers import SAMPLE, CliHome, SoftwareKey, home_env, openssl, running_server, write

PIN = "ctx-user-pin-5511"
SO_PIN = "ctx-so-pin-90817"


class Home(CliHome):
    def __init__(self, path: Path) -> None:
        super().__init__(path, PIN, SO_PIN)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """CA (PIN generated into secrets/ca.pin), one customer with a certificate, one payment."""
    h = Home(tmp_path_factory.mktemp("contexts"))
    h.run("ca", "init")
    assert (h.path / "secrets" / "ca.pin").exists() and (h.path / "secrets" / "online.pin").exists()
    h.run("token", "init", "--label", "dora")
    h.run("token", "keygen", "--label", "dora")
    h.run("token", "csr", "--label", "dora", "--subject", "CN=Dora,O=Example Bank,C=CN", "-o", "req.pem")
    h.run("customer", "add", "C0001", "--name", "Dora", "--account", SAMPLE["payer"]["account"])
    h.run("ca", "issue", "req.pem", "-o", "cert.pem", "--chain", "--customer", "C0001")
    h.run("token", "import", "--label", "dora", "cert.pem")
    (h.path / "tx.json").write_text(json.dumps(SAMPLE, ensure_ascii=False), encoding="utf-8")
    h.run("sign", "--label", "dora", "tx.json", "-o", "tx.p7s", "--yes")
    (h.path / "tx2.json").write_text(json.dumps({**SAMPLE, "tx_id": "ctx-second-0001"}, ensure_ascii=False),
                                     encoding="utf-8")
    h.run("sign", "--label", "dora", "tx2.json", "-o", "tx2.p7s", "--yes")
    h.run("ca", "chain", "-o", "chain.pem")
    h.run("bank", "add", "ctx-bank")
    h.run("bank", "key", "add", "ctx-bank", "-o", "bank.key")
    return h


def _get(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_serve_works_with_no_ca_pin_anywhere(home: Home, tmp_path: Path) -> None:
    ca_pin = home.path / "secrets" / "ca.pin"
    kept = ca_pin.read_bytes()
    ca_pin.unlink()                       # the CA PIN file is gone, UDUN_CA_PIN is unset
    try:
        auth = {"Authorization": f"Bearer {(home.path / 'bank.key').read_text().strip()}"}
        with running_server(home.path, workers=1, extra_env={"UDUN_CA_PIN": ""}) as (base, _proc):
            status, body = _get(f"{base}/api/v1/verify", (home.path / "tx.p7s").read_bytes(),
                                {"Content-Type": "application/pkcs7-mime", **auth})
            answer = json.loads(body)
            assert status == 200 and answer["status"] == "TOTAL_PASSED", answer
            status, bundle = _get(f"{base}/api/v1/evidence/{answer['evidence_id']}",
                                  headers=auth)
            assert status == 200 and bundle[:2] == b"PK"
            for path in ("/crl/issuing-ca.crl", "/crl/root-ca.crl", "/ca/issuing-ca.crt", "/ca/root-ca.crt"):
                status, der = _get(base + path)
                assert status == 200 and der[:1] == b"\x30", path
            status, health = _get(f"{base}/healthz")
            assert status == 200 and json.loads(health)["status"] == "ok"
            # OCSP and TSA with openssl as the client.
            chain = (home.path / "chain.pem").read_bytes().split(b"-----END CERTIFICATE-----\n")
            issuing = write(tmp_path / "issuing.pem", chain[0] + b"-----END CERTIFICATE-----\n")
            ocsp = openssl("ocsp", "-issuer", str(issuing), "-cert", str(home.path / "cert.pem"), "-url",
                           f"{base}/ocsp", "-CAfile", str(home.path / "chain.pem"), "-resp_text")
            assert ocsp.returncode == 0 and b": good" in ocsp.stdout, ocsp.stdout + ocsp.stderr
            query = openssl("ts", "-query", "-data", str(home.path / "tx.json"), "-sha256", "-cert")
            assert query.returncode == 0
            status, reply = _get(f"{base}/tsa", query.stdout, {"Content-Type": "application/timestamp-query"})
            assert status == 200
            text = openssl("ts", "-reply", "-in", "/dev/stdin", "-text", input=reply)
            assert b"Status: Granted" in text.stdout, text.stdout + text.stderr
        # The same without the server: a fresh bank-facing app in a process of its own holds
        # sessions on the online token only, never on the CA's tokens.
        probe = subprocess.run([sys.executable, "-c", _PROBE, str(home.path / "tx2.p7s"), str(home.path / "bank.key")],
                               env=home_env({**os.environ, **home.env, "UDUN_CA_PIN": ""}), capture_output=True,
                               timeout=120, check=False)
        assert probe.returncode == 0, probe.stderr
        seen = json.loads(probe.stdout)
        assert seen["verify"] == "TOTAL_PASSED" and seen["ocsp"] == 200
        assert seen["logged_in"] == ["udun-online"], seen
    finally:
        ca_pin.write_bytes(kept)
        ca_pin.chmod(0o600)


_PROBE = """
import json, sys
from webapi import create_app
from keystore import token
from ca.directory import CaDirectory
from pkicore.ocsp import build_request
from asn1crypto import x509
app = create_app()
c = app.test_client()
c.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + open(sys.argv[2]).read().strip()
v = c.post("/api/v1/verify", data=open(sys.argv[1], "rb").read(), content_type="application/pkcs7-mime")
ca = CaDirectory.open(__import__("config.settings").settings.load_settings(), migrate_schema=False)
issuing = x509.Certificate.load(ca.chain_der()[0])
o = c.post("/ocsp", data=build_request(issuing, issuing), content_type="application/ocsp-request")
c.post("/tsa", data=b"junk", content_type="application/timestamp-query")
print(json.dumps({"verify": v.get_json()["status"], "ocsp": o.status_code,
                  "logged_in": sorted(token.logged_in_labels())}))
"""


def test_delegated_profiles_cannot_be_requested(home: Home, admin_client, settings) -> None:  # type: ignore[no-untyped-def]
    """The forged-responder / forged-TSA attack starts with asking for such a certificate."""
    from asn1crypto import pem

    from pkicore.x509build import build_csr, parse_name

    for profile in ("ocsp-responder", "tsa"):
        proc = home.run("ca", "issue", "req.pem", "--profile", profile, ok=False)
        assert proc.returncode == 2 and b"unknown profile" in proc.stderr, proc.stderr
        csr = pem.armor("CERTIFICATE REQUEST", build_csr(SoftwareKey(), parse_name("CN=Mallory,O=Evil")))
        before = admin_client.application.extensions["udun-admin"]["ca"].store.count()
        resp = admin_client.post(f"/api/v1/certificates?profile={profile}", data=csr,
                                 headers={"Authorization": "Bearer udun-test-admin-key-0123456789abcdef"})
        assert resp.status_code == 400 and resp.get_json()["code"] == "bad-input", resp.get_json()
        assert admin_client.application.extensions["udun-admin"]["ca"].store.count() == before


def test_a_responder_the_ca_did_not_record_cannot_say_good(home: Home, tmp_path: Path) -> None:
    """Even a responder certificate signed by the issuing CA (an insider with the issuing key,
    or one issued through the old hole) is not a responder of ours: its "good" for a revoked
    certificate leaves `udun verify` without status, never TOTAL_PASSED."""
    shown = openssl("x509", "-in", str(home.path / "cert.pem"), "-noout", "-serial")
    cert_serial = shown.stdout.decode().strip().split("=")[1].lower().lstrip("0")
    home.run("ca", "revoke", cert_serial, "--reason", "keyCompromise")
    script = tmp_path / "forge.py"
    script.write_text(_FORGE)
    forged = tmp_path / "forged.ocsp"
    proc = subprocess.run([sys.executable, str(script), str(home.path / "cert.pem"), str(forged)],
                          env=home_env({**os.environ, **home.env}), capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    shown = openssl("ocsp", "-respin", str(forged), "-resp_text", "-noverify")
    assert b"Cert Status: good" in shown.stdout                     # it does say good
    # With the root's CRL for the issuing CA, the forged answer is the only thing missing.
    root_crl = tmp_path / "root.crl"
    home.run("ca", "crl", "--ca", "root", "-o", str(root_crl))
    verdict = home.run("verify", "tx.p7s", "--ocsp-response", str(forged), "--crl", str(root_crl), "--offline",
                       "--json", ok=False)
    report = json.loads(verdict.stdout)
    assert verdict.returncode == 1 and report["status"] == "INDETERMINATE", report
    assert report["statuses"][0]["status"] != "good", report["statuses"]
    # The real responder's answer for the same certificate: revoked.
    real = home.run("verify", "tx.p7s", "--offline", "--json", ok=False)
    assert json.loads(real.stdout)["sub_indication"].startswith("REVOKED")


# Run in the CA's home: the issuing key signs a delegated OCSP certificate for a key of the
# attacker's (ca.issue_delegated, the internal call; not recorded in delegated_keys), and
# that key signs "good" for the revoked certificate.
_FORGE = """
import sys
from datetime import datetime, timedelta, UTC
from asn1crypto import pem, x509
from cryptography import x509 as cx509
sys.path.insert(0, %r)
from helpers import SoftwareKey
from ca.authority import CertificateAuthority
from config.settings import load_settings
from pkicore import ocsp, names
from pkicore.algorithms import default_scheme
from pkicore.x509build import build_csr
ca = CertificateAuthority.open(load_settings())
key = SoftwareKey()
rec = ca.issue_delegated(build_csr(key, names.build([("common_name", "udun OCSP Responder")])),
                         "ocsp-responder", requester="insider")
cert = x509.Certificate.load(pem.unarmor(open(sys.argv[1], "rb").read().split(b"-----END")[0] + b"-----END CERTIFICATE-----\\n")[2])
issuing = x509.Certificate.load(ca.chain_der()[0])
req = ocsp.parse_request(ocsp.build_request(cert, issuing))
now = datetime.now(UTC).replace(microsecond=0)
der = ocsp.build_response(key, default_scheme(key.key_type), cx509.load_der_x509_certificate(rec.der),
                          [cx509.load_der_x509_certificate(issuing.dump())], ocsp.Answer(req.queries[0], "good"),
                          None, this_update=now, next_update=now + timedelta(hours=1))
open(sys.argv[2], "wb").write(der)
""" % str(Path(__file__).parent)


def test_delegated_keys_live_on_the_online_token(home: Home) -> None:
    """`ca init` made the OCSP and TSA keys on the online token under its own PIN; the CA
    token holds only the issuing key; renewal is an explicit job."""
    online_pin = (home.path / "secrets" / "online.pin").read_text().strip()
    ca_pin = (home.path / "secrets" / "ca.pin").read_text().strip()
    assert online_pin != ca_pin
    online = home.run("token", "show", "--label", "udun-online", UDUN_PIN=online_pin).stdout
    assert online.count(b"  key  ") == 2
    assert home.run("token", "show", "--label", "udun-online", ok=False, UDUN_PIN=ca_pin).returncode == 2
    assert home.run("token", "show", "--label", "udun-ca", UDUN_PIN=ca_pin).stdout.count(b"  key  ") == 1
    renewed = home.run("ca", "renew-delegated", "--force")
    assert renewed.stderr.count(b"new key and certificate") == 2
    assert home.run("token", "show", "--label", "udun-online", UDUN_PIN=online_pin).stdout.count(b"  key  ") == 4
    assert home.run("ca", "renew-delegated").stderr == b""        # nothing is due now
    help_text = home.run("ca", "--help").stdout
    for cmd in (b"renew-delegated", b"jobs", b"crl"):
        assert cmd in help_text


def test_a_forged_bundle_fails_against_the_record(home: Home, tmp_path: Path) -> None:
    """An insider's TSA certificate (made with the issuing key but never recorded) stamps a
    complete bundle for an evidence id that never existed: where the CA's database is,
    `udun evidence verify` refuses it (the id, the TSA certificate)."""
    listed = home.run("evidence", "list").stdout.decode().split()
    real_id = next(w for w in listed if w.startswith("ev_"))
    script = tmp_path / "forge_bundle.py"
    script.write_text(_FORGE_BUNDLE)
    out = tmp_path / "forged.zip"
    proc = subprocess.run([sys.executable, str(script), real_id, str(out)], env=home_env({**os.environ, **home.env}),
                          capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    checked = home.run("evidence", "verify", str(out), ok=False)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert b"is not a record of this CA's database" in checked.stdout
    assert b"TSA certificate" in checked.stdout and b"never made" in checked.stdout
    # The genuine bundle of the real record passes the same check.
    genuine = tmp_path / "genuine.zip"
    home.run("evidence", "export", real_id, "-o", str(genuine))
    ok = home.run("evidence", "verify", str(genuine))
    assert b"matches this CA's record" in ok.stdout, ok.stdout


_FORGE_BUNDLE = """
import dataclasses, secrets, sys
sys.path.insert(0, %r)
from asn1crypto import x509
from helpers import SoftwareKey
from ca import bundle
from ca.authority import CertificateAuthority
from ca.delegated import Delegated
from ca.storage.evidence import EvidenceStore
from ca.tsa import TimeStampAuthority
from config.settings import load_settings
from pkicore import cms_view, names, tsp
from pkicore.algorithms import default_scheme
from pkicore.x509build import build_csr
ca = CertificateAuthority.open(load_settings())
key = SoftwareKey()
rec = ca.issue_delegated(build_csr(key, names.build([("organization_name", "Mallory"), ("common_name", "Mallory TSA")])),
                         "tsa", requester="insider")
rogue = Delegated(key, default_scheme(key.key_type), x509.Certificate.load(rec.der), rec.not_after)
tsa = TimeStampAuthority(ca)
tsa._key.current = lambda: rogue
real = EvidenceStore(ca.store).get(sys.argv[1], bank_id=None)
stamp = tsa.stamp(tsp.signature_time_stamp_imprint(cms_view.view(real.cms).signers[0].signature))
new_id = "ev_" + secrets.token_hex(16)
forged = dataclasses.replace(real, id=new_id, time_stamp=stamp.token, report=real.report.replace(real.id, new_id),
                             stamped_cms=tsp.add_unsigned_attribute(real.cms, tsp.ID_AA_TIME_STAMP_TOKEN, stamp.token))
open(sys.argv[2], "wb").write(bundle.build(forged, tsa, ca.clock()))
""" % str(Path(__file__).parent)
