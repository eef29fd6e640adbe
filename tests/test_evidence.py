"""Issue 5 acceptance 2-4: evidence records and bundles, time travel, replay protection."""
from __future__ import annotations

import io
import json
import re
import subprocess
import threading
import urllib.request
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from helpers import PIN, SoftwareKey, now, running_server, sample_tx, udun, write

ADMIN = {"Authorization": "Bearer test-admin-key"}


def _verify(client, cms: bytes) -> dict:  # type: ignore[no-untyped-def,type-arg]
    resp = client.post("/api/v1/verify", data=cms, content_type="application/pkcs7-mime")
    assert resp.status_code == 200, resp.get_data()
    return resp.get_json()  # type: ignore[no-any-return]


def _bundle(client, evidence_id: str) -> bytes:  # type: ignore[no-untyped-def]
    resp = client.get(f"/api/v1/evidence/{evidence_id}", headers=ADMIN)
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    return resp.get_data()  # type: ignore[no-any-return]


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _rezip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


@pytest.fixture(scope="module")
def stored(settings, enrolled, app) -> tuple[dict, bytes]:  # type: ignore[no-untyped-def,type-arg]
    from signer.signing import sign_transaction

    client = app.test_client()
    cms = sign_transaction(settings, "user-ec", PIN, sample_tx())
    answer = _verify(client, cms)
    assert answer["status"] == "TOTAL_PASSED" and answer["evidence_id"].startswith("ev_")
    return answer, _bundle(client, answer["evidence_id"])


def test_answer_carries_evidence_and_time_stamp(stored) -> None:  # type: ignore[no-untyped-def]
    answer, _ = stored
    assert answer["time_stamp"]["gen_time"].endswith("Z") and answer["time_stamp"]["serial"]
    assert "first_evidence_id" not in answer


def test_bundle_verifies_with_the_readme_openssl_commands(stored, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, data = stored
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        z.extractall(tmp_path)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    readme = (folder / "README.txt").read_text()
    commands = [line[2:] for line in readme.splitlines() if line.startswith("$ ")]
    assert len(commands) >= 6 and any(c.startswith("sha256sum -c") for c in commands)
    outputs = []
    for cmd in commands:
        proc = subprocess.run(["bash", "-c", cmd], cwd=folder, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"{cmd}\n{proc.stdout}{proc.stderr}"
        outputs.append(proc.stdout + proc.stderr)
    text = "\n".join(outputs)
    assert "CAdES Verification successful" in text
    assert text.count("Verification: OK") == 2              # the signature's and the manifest's stamps
    assert "Response verify OK" in text and "signer.pem: good" in text
    assert "payment.json: OK" in text and "FAILED" not in text
    sha = subprocess.run(["sha256sum", "payment.json"], cwd=folder, capture_output=True, text=True).stdout.split()[0]
    assert json.loads((folder / "manifest.json").read_text())["files"]["payment.json"] == sha


def test_a_restamped_manifest_or_a_hidden_copy_does_not_pass(stored, ca) -> None:  # type: ignore[no-untyped-def]
    """Two ways to smuggle an edited file past the manifest: both are caught."""
    import hashlib

    from ca.tsa import TimeStampAuthority
    from pkicore import tsp
    from pkicore.bundle_check import verify_bundle

    _, data = stored
    members = _members(data)
    folder = next(iter(members)).split("/", 1)[0]
    root = ca.chain_der()[1:]
    # 1. edit report.json, fix its sum in the manifest, and get the manifest stamped by the
    #    public TSA (what anyone can ask POST /tsa for): the records policy is missing.
    edited = dict(members)
    report = json.loads(edited[f"{folder}/report.json"])
    report["transaction"]["amount"] = "9999.00"
    edited[f"{folder}/report.json"] = json.dumps(report).encode()
    manifest = json.loads(edited[f"{folder}/manifest.json"])
    manifest["files"]["report.json"] = hashlib.sha256(edited[f"{folder}/report.json"]).hexdigest()
    edited[f"{folder}/manifest.json"] = json.dumps(manifest).encode()
    tsa = TimeStampAuthority(ca)
    request = tsp.build_request(hashlib.sha256(edited[f"{folder}/manifest.json"]).digest())
    edited[f"{folder}/manifest.tst"] = tsp.response_token(tsa.respond(request))
    verdict = verify_bundle(_rezip(edited), root, now())
    assert not verdict.ok and verdict.problems[0].startswith("manifest.tst"), verdict.problems
    # 2. change payment.json and hide the original beside it in another folder
    hidden = dict(members)
    hidden[f"{folder}/payment.json"] = members[f"{folder}/payment.json"].replace(b"1234.50", b"9234.50")
    hidden["zzz/payment.json"] = members[f"{folder}/payment.json"]
    verdict = verify_bundle(_rezip(hidden), root, now())
    assert not verdict.ok and "one folder" in verdict.problems[0], verdict.problems


def test_udun_evidence_verify_accepts_then_names_any_changed_file(stored, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, data = stored
    good = write(tmp_path / "bundle.zip", data)
    proc = udun("evidence", "verify", str(good))
    assert proc.returncode == 0 and b"OK" in proc.stdout, proc.stdout + proc.stderr
    members = _members(data)
    for name, content in members.items():
        changed = dict(members)
        flipped = bytearray(content)
        flipped[len(flipped) // 2] ^= 0x01
        changed[name] = bytes(flipped)
        path = write(tmp_path / "changed.zip", _rezip(changed))
        proc = udun("evidence", "verify", str(path))
        short = name.split("/", 1)[1]
        assert proc.returncode == 1, f"{short}: {proc.stdout!r}"
        headline = next(line for line in proc.stdout.decode().splitlines() if "FAILED" in line)
        assert re.search(f"FAILED: {re.escape(short)}[ :]", headline), f"{short}: {headline}"


def test_evidence_needs_the_admin_key_and_unknown_is_404(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/v1/evidence/ev_nothing").status_code == 401
    resp = client.get("/api/v1/evidence/ev_nothing", headers=ADMIN)
    assert resp.status_code == 404 and resp.get_json()["code"] == "not-found"


def test_replay_gives_the_first_evidence_id_and_one_record(settings, enrolled, client, ca) -> None:  # type: ignore[no-untyped-def]
    from ca.evidence_store import EvidenceStore
    from signer.signing import sign_transaction

    tx = sample_tx()
    cms = sign_transaction(settings, "user-ec", PIN, tx)
    first = _verify(client, cms)
    again = _verify(client, cms)
    assert first["status"] == "TOTAL_PASSED"
    assert (again["status"], again["sub_indication"]) == ("TOTAL_FAILED", "REPLAYED")
    assert again["first_evidence_id"] == first["evidence_id"] and again["evidence_id"] is None
    assert first["evidence_id"] in again["message"]
    # a new signature over the same payment is the same payment: replayed too
    resigned = sign_transaction(settings, "user-ec", PIN, tx)
    assert _verify(client, resigned)["sub_indication"] == "REPLAYED"
    ids = [i for i, _, _, tx_id in EvidenceStore(ca.store).ids(10_000) if tx_id == tx.tx_id]
    assert ids == [first["evidence_id"]]


def test_signing_time_window(ca, client) -> None:  # type: ignore[no-untyped-def]
    from pkicore.cms_build import sign_data
    from pkicore.x509build import build_csr, parse_name

    from ca.authority import CertificateAuthority

    key = SoftwareKey()
    earlier = CertificateAuthority(ca.settings, ca.store, lambda: now() - timedelta(hours=1))
    rec = earlier.issue(build_csr(key, parse_name("CN=Window Customer,O=udun tests,C=CN")))
    for skew in (timedelta(minutes=-6), timedelta(minutes=6), timedelta(minutes=4, seconds=50),
                 timedelta(minutes=-4, seconds=-50)):
        cms = sign_data(key, rec.der, ca.chain_der(), sample_tx().canonical_bytes(), signing_time=now() + skew)
        answer = _verify(client, cms)
        if abs(skew) > timedelta(minutes=5):
            assert (answer["status"], answer["sub_indication"]) == ("INDETERMINATE", "SIGNING_TIME_OUT_OF_WINDOW")
            assert answer["evidence_id"] is None
        else:
            assert answer["status"] == "TOTAL_PASSED", answer["message"]


def test_challenges_single_use_and_expiry(ca, client) -> None:  # type: ignore[no-untyped-def]
    from pkicore.cms_build import sign_data
    from pkicore.x509build import build_csr, parse_name

    key = SoftwareKey()
    rec = ca.issue(build_csr(key, parse_name("CN=Challenge Customer,O=udun tests,C=CN")))

    def pay(challenge: str | None) -> dict:  # type: ignore[type-arg]
        tx = sample_tx(challenge=challenge) if challenge else sample_tx()
        return _verify(client, sign_data(key, rec.der, ca.chain_der(), tx.canonical_bytes(), signing_time=now()))

    made = client.post("/api/v1/challenges")
    assert made.status_code == 201
    challenge = made.get_json()["challenge"]
    assert pay(challenge)["status"] == "TOTAL_PASSED"
    assert pay(challenge)["sub_indication"] == "CHALLENGE_USED"        # another payment, same challenge
    assert pay("A" * 32)["sub_indication"] == "CHALLENGE_UNKNOWN"
    from ca.evidence_store import EvidenceStore

    EvidenceStore(ca.store).add_challenge("expired-challenge-0001", now() - timedelta(minutes=10),
                                          now() - timedelta(minutes=5))
    assert pay("expired-challenge-0001")["sub_indication"] == "CHALLENGE_EXPIRED"


class _Clock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def test_evidence_outlives_revocation_and_expiry(settings, ca, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Acceptance 3, with an injected clock shared by the CA, the TSA and the verifier."""
    from ca.authority import CertificateAuthority
    from ca.ocsp import Responder, status_source
    from ca.revocation import Revocation
    from pkicore.bundle_check import verify_bundle
    from pkicore.cms_build import sign_data
    from pkicore.cms_verify import Verifier
    from pkicore.pathval import ChainValidator, TrustStore
    from pkicore.x509build import build_csr, parse_name
    from webapi import create_app

    clock = _Clock(now() + timedelta(days=1))
    later = CertificateAuthority(settings, ca.store, clock)
    verifier = Verifier(ChainValidator(TrustStore.from_certs(ca.chain_der())), clock=clock,
                        status=status_source(Responder(later)), signing_window=timedelta(minutes=5))
    client = create_app(settings, ca=later, verifier=verifier, admin_api_key="test-admin-key").test_client()
    key = SoftwareKey()
    rec = later.issue(build_csr(key, parse_name("CN=Time Traveller,O=udun tests,C=CN")))
    try:
        cms = sign_data(key, rec.der, ca.chain_der(), sample_tx().canonical_bytes(), signing_time=clock())
        answer = _verify(client, cms)
        assert answer["status"] == "TOTAL_PASSED", answer["message"]

        clock.moment += timedelta(hours=1)                      # compromise reported after signing
        Revocation(later).revoke(rec.serial, "keyCompromise")
        bundle = _bundle(client, answer["evidence_id"])
        path = write(tmp_path / "bundle.zip", bundle)

        root = ca.chain_der()[1]
        expired_by = rec.not_after + timedelta(days=30)         # and the certificate has expired
        verdict = verify_bundle(bundle, [root], expired_by)
        assert verdict.ok, verdict.problems
        assert any("expired since" in f for f in verdict.facts)
        proc = udun("evidence", "verify", str(path), "--trust", str(write(tmp_path / "root.pem", _pem(root))))
        assert proc.returncode == 0 and b"OK" in proc.stdout, proc.stdout + proc.stderr

        clock.moment += timedelta(hours=1)                      # a signature after the revocation
        late = sign_data(key, rec.der, ca.chain_der(), sample_tx().canonical_bytes(), signing_time=clock())
        refused = _verify(client, late)
        assert (refused["status"], refused["sub_indication"]) == ("TOTAL_FAILED", "REVOKED")
        assert refused["evidence_id"] is None
    finally:
        Revocation(ca).publish()        # a CRL at today's time again for the tests that follow


def _pem(der: bytes) -> bytes:
    from asn1crypto import pem

    return pem.armor("CERTIFICATE", der)  # type: ignore[no-any-return]


def test_same_payment_at_the_same_moment_from_two_servers(ca, home: Path, enrolled, settings) -> None:  # type: ignore[no-untyped-def]
    """Two server processes get the same payments at the same moment: one record each."""
    from ca.authority import ca_pin
    from ca.evidence_store import EvidenceStore
    from signer.signing import sign_transaction

    payments = [(tx, sign_transaction(settings, "user-ec", PIN, tx)) for tx in (sample_tx() for _ in range(12))]
    with running_server(home, ca_pin(ca.settings), workers=1) as (one, _), \
            running_server(home, ca_pin(ca.settings), workers=1) as (two, _):
        for tx, cms in payments:
            barrier = threading.Barrier(2)
            answers: list[dict] = []  # type: ignore[type-arg]

            def post(base: str, body: bytes = cms) -> None:
                req = urllib.request.Request(f"{base}/api/v1/verify", data=body,
                                             headers={"Content-Type": "application/pkcs7-mime"})
                barrier.wait()
                with urllib.request.urlopen(req, timeout=60) as resp:
                    answers.append(json.loads(resp.read()))

            threads = [threading.Thread(target=post, args=(b,)) for b in (one, two)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            statuses = sorted((a["status"], a["sub_indication"] or "") for a in answers)
            assert statuses == [("TOTAL_FAILED", "REPLAYED"), ("TOTAL_PASSED", "")], answers
            passed = next(a for a in answers if a["status"] == "TOTAL_PASSED")
            replayed = next(a for a in answers if a["status"] != "TOTAL_PASSED")
            assert replayed["first_evidence_id"] == passed["evidence_id"]
            ids = [i for i, _, _, tx_id in EvidenceStore(ca.store).ids(10_000) if tx_id == tx.tx_id]
            assert ids == [passed["evidence_id"]]
    assert re.fullmatch(r"ev_[0-9a-f]{32}", passed["evidence_id"])


def test_cli_list_export_and_verify(stored, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    answer, _ = stored
    evidence_id = answer["evidence_id"]
    listed = udun("evidence", "list", "--limit", "10000")
    assert listed.returncode == 0 and evidence_id.encode() in listed.stdout
    out = tmp_path / "exported.zip"
    proc = udun("evidence", "export", evidence_id, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    ok = udun("evidence", "verify", str(out))
    assert ok.returncode == 0 and f"evidence bundle {evidence_id} OK".encode() in ok.stdout, ok.stdout + ok.stderr
    missing = udun("evidence", "export", "ev_000000000000nothing")
    assert missing.returncode == 2 and b"[not-found]" in missing.stderr
    unpinned = udun("evidence", "verify", str(out), env={"UDUN_HOME": str(tmp_path / "empty-home")})
    assert unpinned.returncode == 2 and b"--trust" in unpinned.stderr
