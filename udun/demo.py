"""`udun demo`: the whole U-key story, for real, in a temporary UDUN_HOME.

CA on a SoftHSM token -> client token -> key pair on the token -> CSR -> certificate
-> certificate on the token -> payment shown and signed -> API started -> verified with
evidence (time-stamped) -> replay refused -> one byte changed -> rejected -> evidence
bundle checked offline -> server stopped.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

DEMO_PIN = "123456"
DEMO_SO_PIN = "12345678"
SAMPLE = {
    "version": 1, "tx_id": "TX-20261122-0001",
    "payer": {"account": "6222020200112233445", "name": "张三"},
    "payee": {"account": "6228480012345678901", "name": "李四", "bank": "中国农业银行"},
    "amount": "1234.50", "currency": "CNY", "created_at": "2026-11-22T10:00:00Z", "memo": "房租",
}


def _step(n: int, text: str) -> None:
    print(f"\n[{n:2}] {text}", flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: bytes, bank_key: str) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/pkcs7-mime",
                                                          "Authorization": f"Bearer {bank_key}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_healthy(base: str, proc: subprocess.Popen[bytes], seconds: float = 30,
                 detail: Callable[[], str] = lambda: "") -> None:
    """Wait until a started `udun serve` answers GET /healthz (or fail if it exits)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}{detail()}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer /healthz within {seconds:.0f}s{detail()}")


def _show_report(status: int, report: dict[str, Any]) -> None:
    print(f"     HTTP {status}: {report.get('status')} {report.get('sub_indication') or ''}".rstrip())
    print(f"     {report.get('message', report.get('detail', ''))}")
    for c in report.get("checks", []):
        print(f"       [{'ok' if c['result'] == 'passed' else 'FAIL'}] {c['check']}: {c.get('detail', '')}")


def run(keep: bool = False) -> int:
    home = Path(tempfile.mkdtemp(prefix="udun-demo-"))
    # Everything below reads UDUN_HOME; it must be set before the token library loads.
    os.environ["UDUN_HOME"] = str(home)
    # The demo's own home and SQLite file: nothing of an operator's set-up applies.
    for var in ("UDUN_DATABASE_URL", "UDUN_CA_PIN", "UDUN_CONFIG", "UDUN_TLS_CERT", "UDUN_TLS_KEY",
                "UDUN_TLS_CLIENT_CA", "UDUN_TLS_CLIENT_AUTH", "UDUN_GUNICORN_CONFIG"):
        os.environ.pop(var, None)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    os.environ["UDUN_BASE_URL"] = base
    server: subprocess.Popen[bytes] | None = None
    try:
        from ca.authority import CertificateAuthority
        from keystore import token
        from pkicore import tx as txmod
        from pkicore.algorithms import KeyType
        from config.settings import load_settings
        from signer import signing, tokens

        settings = load_settings()
        print(f"udun demo in {home}")

        _step(1, "Creating the CA: root key on token 'udun-root', issuing CA key on token 'udun-ca', the "
                 "OCSP responder and TSA keys on token 'udun-online' under a PIN of their own (SoftHSM).")
        ca = CertificateAuthority.open(settings)
        result = ca.init(KeyType.EC_P256, org="udun demo")
        print(f"     root CA    {result.root.subject}")
        print(f"     issuing CA {result.issuing.subject}")

        _step(2, "Initialising the customer's token 'zhangsan-ukey' (stands in for a USB key).")
        serial = tokens.init(settings, "zhangsan-ukey", DEMO_PIN, DEMO_SO_PIN)
        print(f"     token serial {serial}")

        _step(3, "Generating an ECDSA P-256 key pair on the token (sensitive, never extractable).")
        key = tokens.keygen(settings, "zhangsan-ukey", DEMO_PIN, KeyType.EC_P256)
        print(f"     key id {key.key_id.hex()}")

        _step(4, "Making a certificate request (PKCS#10) signed by the token key.")
        csr = tokens.csr(settings, "zhangsan-ukey", DEMO_PIN, "CN=张三,O=udun demo bank,C=CN")
        print(f"     {len(csr)} bytes, subject CN=张三,O=udun demo bank,C=CN")

        _step(5, "The CA checks proof of possession and the profile, then issues the certificate, bound to "
                 "the customer and the account they pay from.")
        from ca.customers import Customers

        payer = str(SAMPLE["payer"]["account"])  # type: ignore[index]
        Customers(ca.store, ca.clock).add("C0001", "张三", [payer], actor="demo")
        rec = ca.issue(csr, "client", requester="demo", customer="C0001")
        print(f"     serial {rec.serial}, valid until {rec.not_after:%Y-%m-%d}, customer C0001 (account {payer})")

        _step(6, "Writing the certificate and the CA chain onto the token.")
        assert rec.der is not None
        from asn1crypto import pem

        tokens.import_certificates(settings, "zhangsan-ukey", DEMO_PIN,
                                   b"".join(pem.armor("CERTIFICATE", d) for d in [rec.der, *ca.chain_der()]))
        print("     done")

        _step(7, "A payment is shown to the customer in plain words:")
        tx = txmod.validate(json.loads(json.dumps(SAMPLE)))
        for line in txmod.describe(tx):
            print(f"       {line}")
        print("     The customer confirms and enters the PIN; the token signs (CMS, CAdES-BES).")
        cms = signing.sign_transaction(settings, "zhangsan-ukey", DEMO_PIN, tx)
        (home / "payment.p7s").write_bytes(cms)
        print(f"     signed payment: {len(cms)} bytes")
        token.close_all()

        _step(8, f"Starting the bank-facing API (gunicorn) on {base}: it holds the online token's PIN only, "
                 "never the CA's.")
        server_env = {k: v for k, v in os.environ.items() if k != "UDUN_CA_PIN"}
        server = subprocess.Popen(
            [sys.executable, "-c", "from udun.cli import main; main()", "serve", "--port", str(port),
             "--workers", "1"],
            env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        wait_healthy(base, server)
        print("     healthy")
        from ca.banks import Banks

        print("     The operator registers the bank and gives it an API key (udun bank add / udun bank key add):")
        banks = Banks(ca.store, ca.clock)
        banks.add("demo-bank", "udun demo bank", actor="demo")
        issued = banks.issue_key("demo-bank", actor="demo")
        bank_key = issued.text
        print(f"     bank demo-bank, key {issued.record.id} (scopes {' '.join(issued.record.scopes)}; shown to "
              "the bank once, kept only as a scrypt hash)")

        _step(9, "The bank POSTs the signed payment to /api/v1/verify:")
        status, report = _post(f"{base}/api/v1/verify", cms, bank_key)
        _show_report(status, report)
        evidence_id = report.get("evidence_id")
        good = status == 200 and report.get("status") == "TOTAL_PASSED" and bool(evidence_id)
        print(f"     evidence {evidence_id}, signature time-stamped by the CA's TSA at "
              f"{(report.get('time_stamp') or {}).get('gen_time')}")

        _step(10, "Someone sends the same signed payment again (a replay):")
        status, report = _post(f"{base}/api/v1/verify", cms, bank_key)
        _show_report(status, report)
        replay = report.get("sub_indication") == "REPLAYED" and report.get("first_evidence_id") == evidence_id

        _step(11, "Someone changes one byte of the signed payment (the amount 1234.50 -> 9234.50):")
        tampered = cms.replace(b'"amount":"1234.50"', b'"amount":"9234.50"', 1)
        assert tampered != cms
        status, report = _post(f"{base}/api/v1/verify", tampered, bank_key)
        _show_report(status, report)
        bad = status == 200 and report.get("status") == "TOTAL_FAILED" and report.get("sub_indication") == "HASH_FAILURE"

        _step(12, "The bank downloads the evidence bundle and checks it offline (OpenSSL commands inside):")
        bundle_ok = False
        if evidence_id:
            req = urllib.request.Request(f"{base}/api/v1/evidence/{evidence_id}",
                                         headers={"Authorization": f"Bearer {bank_key}"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                bundle = resp.read()
            path = home / f"{evidence_id}.zip"
            path.write_bytes(bundle)
            from pkicore.bundle_check import verify_bundle
            from pkicore.clock import system_clock

            verdict = verify_bundle(bundle, [ca.chain_der()[1]], system_clock())
            for fact in verdict.facts:
                print(f"       {fact}")
            bundle_ok = verdict.ok
            print(f"     {path.name}: {'OK' if verdict.ok else 'FAILED: ' + verdict.problems[0]}"
                  f" (udun evidence verify {path.name})")

        _step(13, "Stopping the server.")
        server.terminate()
        server.wait(timeout=15)
        server = None
        print("     stopped; nothing left running")
        ok = good and replay and bad and bundle_ok
        print(f"\n{'DEMO OK' if ok else 'DEMO FAILED'}: the genuine payment verified "
              f"{'TOTAL_PASSED with evidence' if good else 'WRONGLY'}, its replay was "
              f"{'refused (REPLAYED)' if replay else 'NOT refused'}, the changed one was "
              f"{'rejected (HASH_FAILURE)' if bad else 'NOT rejected'}, the evidence bundle "
              f"{'verified offline' if bundle_ok else 'did NOT verify'}.")
        return 0 if ok else 1
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        if keep:
            print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
