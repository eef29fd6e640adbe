"""Issue 5 acceptance 2-4: evidence records and bundles, time travel, replay protection.
Issue 9 point 5: the CAs' revocation data and the full chain in every bundle."""
from __future__ import annotations

import io
import json
import random
import re
import subprocess
import threading
import urllib.request
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from helpers import CUSTOMER, PIN, SoftwareKey, now, running_server, sample_tx, udun, write



def _verify(client, cms: bytes) -> dict:  # type: ignore[no-untyped-def,type-arg]
    resp = client.post("/api/v1/verify", data=cms, content_type="application/pkcs7-mime")
    assert resp.status_code == 200, resp.get_data()
    return resp.get_json()  # type: ignore[no-any-return]


def _bundle(client, evidence_id: str) -> bytes:  # type: ignore[no-untyped-def]
    resp = client.get(f"/api/v1/evidence/{evidence_id}")
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
def stored(settings, enrolled, app, bank_key) -> tuple[dict, bytes]:  # type: ignore[no-untyped-def,type-arg]
    from signer.signing import sign_transaction

    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {bank_key}"
    cms = sign_transaction(settings, "user-ec", PIN, sample_tx())
    answer = _verify(client, cms)
    assert answer["status"] == "TOTAL_PASSED" and answer["evidence_id"].startswith("ev_")
    return answer, _bundle(client, answer["evidence_id"])


def test_answer_carries_evidence_and_time_stamp(stored) -> None:  # type: ignore[no-untyped-def]
    answer, _ = stored
    assert answer["time_stamp"]["gen_time"].endswith("Z") and answer["time_stamp"]["serial"]
    assert "first_evidence_id" not in answer


def _run_readme(data: bytes, tmp_path: Path) -> tuple[Path, str]:
    """Unzip a bundle and run every `$ ` command of its README: all must exit 0."""
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
        out = proc.stdout + proc.stderr
        if cmd.startswith("openssl crl") and "-CAfile" in cmd:
            # OpenSSL 3.0 exits 0 after "verify failure" too: the README says to look for this
            assert out.strip() == "verify OK", f"{cmd}\n{out}"
        outputs.append(out)
    text = "\n".join(outputs)
    assert "CAdES Verification successful" in text
    assert text.count("Verification: OK") == 3              # the signature's, SHA256SUMS' and the manifest's stamps
    assert "payment.json: OK" in text and "FAILED" not in text
    return folder, readme


def _serial_listed(crl_text: str, cert_pem: bytes) -> bool:
    from asn1crypto import pem as asn1pem
    from asn1crypto import x509 as asn1x509

    serial = asn1x509.Certificate.load(asn1pem.unarmor(cert_pem)[2]).serial_number
    listed = re.findall(r"Serial Number: ([0-9A-F]+)", crl_text)
    return any(int(s, 16) == serial for s in listed)


def _check_chain_and_ca_status(folder: Path, readme: str, chain: list[bytes]) -> None:
    """ca-chain.pem is the path's CAs, named by the commands; ca-crl-1.der shows the issuing
    CA was not revoked (the root's CRL, checked against root.pem)."""
    from pkicore.pathval import load_certs

    assert load_certs((folder / "ca-chain.pem").read_bytes()) == chain[:1]        # the issuing CA
    cms_cmd = next(line for line in readme.splitlines() if line.startswith("$ openssl cms -verify"))
    assert "-CAfile root.pem -certfile ca-chain.pem" in cms_cmd
    assert "$ openssl crl -inform DER -in ca-crl-1.der -CAfile root.pem -noout" in readme
    assert "$ openssl crl -inform DER -in ca-crl-1.der -noout -text" in readme
    text = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", "ca-crl-1.der", "-noout", "-text"],
                          cwd=folder, capture_output=True, text=True, check=True).stdout
    assert "Issuer: O = udun, CN = udun Root CA" in text
    assert not _serial_listed(text, (folder / "issuing-ca.pem").read_bytes())


def test_bundle_verifies_with_the_readme_openssl_commands(stored, ca, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, data = stored
    folder, readme = _run_readme(data, tmp_path)
    ocsp_cmd = next(line for line in readme.splitlines() if line.startswith("$ openssl ocsp"))
    assert "-verify_other ca-chain.pem" in ocsp_cmd
    _check_chain_and_ca_status(folder, readme, ca.chain_der())
    out = subprocess.run(["bash", "-c", ocsp_cmd[2:]], cwd=folder, capture_output=True, text=True)
    assert "Response verify OK" in out.stderr + out.stdout and "signer.pem: good" in out.stdout
    sha = subprocess.run(["sha256sum", "payment.json"], cwd=folder, capture_output=True, text=True).stdout.split()[0]
    assert json.loads((folder / "manifest.json").read_text())["files"]["payment.json"] == sha


def test_ca_status_files_are_numbered_from_the_issuing_ca_up(ca, enrolled) -> None:  # type: ignore[no-untyped-def]
    """A longer path (signer, CA 1, CA 2, root): CA N's status is ca-<kind>-N.der, checked
    against CA N+1 (the root for the last one)."""
    from ca.bundle import ca_status_lines, cert_file

    issuing, root = ca.chain_der()
    chain = [enrolled["user-ec"].cert_der, issuing, issuing, root]       # only the names matter here
    assert [cert_file(i, 4) for i in range(4)] == ["signer.pem", "issuing-ca.pem", "ca-2.pem", "root.pem"]
    commands = [line for line in ca_status_lines(chain, (("ocsp", b""), ("crl", b"")), 1234) if line.startswith("$")]
    assert commands == [
        "$ openssl ocsp -respin ca-ocsp-1.der -issuer ca-2.pem -cert issuing-ca.pem -CAfile root.pem "
        "-verify_other ca-chain.pem -attime 1234",
        "$ openssl crl -inform DER -in ca-crl-2.der -CAfile root.pem -noout",
        "$ openssl crl -inform DER -in ca-crl-2.der -noout -text",
    ]


def test_the_record_keeps_the_issuing_cas_status(stored, ca) -> None:  # type: ignore[no-untyped-def]
    from asn1crypto import crl as asn1crl

    from ca.storage.evidence import EvidenceStore

    answer, _ = stored
    rec = EvidenceStore(ca.store).get(answer["evidence_id"], bank_id=None)
    assert rec.ca_revocation is not None and [kind for kind, _ in rec.ca_revocation] == ["crl"]
    issuer = asn1crl.CertificateList.load(rec.ca_revocation[0][1])["tbs_cert_list"]["issuer"]
    assert issuer.human_friendly == "Common Name: udun Root CA, Organization: udun"
    assert [st["position"] for st in answer["statuses"]] == ["end-entity", "intermediate 1"]


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


SMALL = 1024          # files up to this size get every byte flipped, larger ones RANDOM_FLIPS
RANDOM_FLIPS = 300
EVERY_BYTE = ("manifest.json", "manifest.tst")   # not covered by manifest.json's sums: every byte


def _flipped(members: dict[str, bytes], name: str, pos: int, mask: int) -> bytes:
    """The bundle with one byte of member ``name`` xor-ed with ``mask`` (non-zero), re-zipped."""
    changed = dict(members)
    content = bytearray(members[name])
    content[pos] ^= mask
    changed[name] = bytes(content)
    return _rezip(changed)


def test_any_changed_byte_of_any_file_is_named(stored, ca) -> None:  # type: ignore[no-untyped-def]
    """Every byte of the small files and of the manifest pair, a few hundred seeded random
    ones of each larger file: never accepted, never a crash, the headline names the file."""
    from pkicore.bundle_check import verify_bundle

    _, data = stored
    root = ca.chain_der()[1:]
    at = now()
    assert verify_bundle(data, root, at).ok
    members = _members(data)
    tried = 0
    for name, content in sorted(members.items()):
        short = name.split("/", 1)[1]
        rng = random.Random(f"{short}")
        every = len(content) <= SMALL or short in EVERY_BYTE
        positions = range(len(content)) if every else rng.sample(range(len(content)), RANDOM_FLIPS)
        for pos in positions:
            mask = rng.randrange(1, 256)
            verdict = verify_bundle(_flipped(members, name, pos, mask), root, at)
            assert not verdict.ok, f"{short}[{pos}] ^ {mask:#04x} was accepted"
            assert re.match(f"{re.escape(short)}[ :]", verdict.problems[0]), \
                f"{short}[{pos}] ^ {mask:#04x}: {verdict.problems[0]}"
            tried += 1
    assert tried > 5000


def test_udun_evidence_verify_accepts_then_names_any_changed_file(stored, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The CLI: exit 0 for the bundle, exit 1 with "FAILED: <file>" for one changed byte per
    file (in manifest.tst: inside the issuing CA certificate it carries, which its signature
    does not cover and which once crashed the check with a ValueError)."""
    from asn1crypto import cms as asn1cms

    _, data = stored
    good = write(tmp_path / "bundle.zip", data)
    proc = udun("evidence", "verify", str(good))
    assert proc.returncode == 0 and b"OK" in proc.stdout, proc.stdout + proc.stderr
    members = _members(data)
    for name, content in members.items():
        short = name.split("/", 1)[1]
        pos = len(content) // 2
        if short == "manifest.tst":
            carried = asn1cms.ContentInfo.load(content)["content"]["certificates"][1].chosen.dump()
            pos = content.index(carried) + len(carried) // 2
        path = write(tmp_path / "changed.zip", _flipped(members, name, pos, 0x01))
        proc = udun("evidence", "verify", str(path))
        assert proc.returncode == 1, f"{short}: {proc.stdout!r} {proc.stderr!r}"
        headline = next(line for line in proc.stdout.decode().splitlines() if "FAILED" in line)
        assert re.search(f"FAILED: {re.escape(short)}[ :]", headline), f"{short}: {headline}"


def _signer_only(cms_der: bytes) -> bytes:
    """The CMS with its certificate set cut down to the signer's (the signature does not
    cover the set): what a client that sends no chain sends."""
    from asn1crypto import cms as asn1cms

    info = asn1cms.ContentInfo.load(cms_der)
    sd = info["content"]
    sid = sd["signer_infos"][0]["sid"]
    keep = [c for c in sd["certificates"]
            if (sid.name == "subject_key_identifier" and c.chosen.key_identifier == sid.chosen.native)
            or (sid.name == "issuer_and_serial_number" and c.chosen.serial_number == sid.chosen["serial_number"].native)]
    assert len(keep) == 1 and len(sd["certificates"]) > 1
    sd["certificates"] = keep
    return info.dump()  # type: ignore[no-any-return]


def test_a_cms_with_the_signers_certificate_alone(settings, enrolled, client, ca, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The API finds the path with its own CA certificates; the bundle carries the whole
    path, so the README commands and `udun evidence verify` pass offline all the same."""
    from pkicore import cms_view
    from pkicore.bundle_check import verify_bundle
    from signer.signing import sign_transaction

    cms = _signer_only(sign_transaction(settings, "user-ec", PIN, sample_tx()))
    assert len(cms_view.view(cms).certificates) == 1
    answer = _verify(client, cms)
    assert answer["status"] == "TOTAL_PASSED" and answer["evidence_id"], answer["message"]
    data = _bundle(client, answer["evidence_id"])
    members = {n.split("/", 1)[1]: d for n, d in _members(data).items()}
    assert members["signature.p7s"] == cms                               # as received
    assert len(cms_view.view(members["signature-t.p7s"]).certificates) == 2   # + the issuing CA
    folder, readme = _run_readme(data, tmp_path / "x")
    _check_chain_and_ca_status(folder, readme, ca.chain_der())
    assert verify_bundle(data, ca.chain_der()[1:], now()).ok
    path = write(tmp_path / "bundle.zip", data)
    proc = udun("evidence", "verify", str(path))
    assert proc.returncode == 0 and b"OK" in proc.stdout, proc.stdout + proc.stderr


def test_a_record_from_before_the_cas_status_was_kept(settings, enrolled, client, ca, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A record stored before migration 0004 (ca_revocation NULL) exports with the root CRL
    that was current at its receipt, from the CRL history, and still verifies offline."""
    from sqlalchemy import update

    from ca.storage.schema import evidence
    from pkicore.bundle_check import verify_bundle
    from signer.signing import sign_transaction

    answer = _verify(client, sign_transaction(settings, "user-ec", PIN, sample_tx()))
    assert answer["status"] == "TOTAL_PASSED"
    with ca.store.engine.begin() as conn:
        conn.execute(update(evidence).where(evidence.c.id == answer["evidence_id"]).values(ca_revocation=None))
    data = _bundle(client, answer["evidence_id"])
    folder, readme = _run_readme(data, tmp_path / "x")
    assert "this record predates keeping them" in readme
    _check_chain_and_ca_status(folder, readme, ca.chain_der())
    verdict = verify_bundle(data, ca.chain_der()[1:], now())
    assert verdict.ok, verdict.problems


def test_evidence_needs_a_bank_key_and_unknown_is_404(client, anon_client) -> None:  # type: ignore[no-untyped-def]
    assert anon_client.get("/api/v1/evidence/ev_nothing").status_code == 401
    resp = client.get("/api/v1/evidence/ev_nothing")
    assert resp.status_code == 404 and resp.get_json()["code"] == "not-found"


def test_replay_gives_the_first_evidence_id_and_one_record(settings, enrolled, client, ca) -> None:  # type: ignore[no-untyped-def]
    from ca.storage.evidence import EvidenceStore
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
    rec = earlier.issue(build_csr(key, parse_name("CN=Window Customer,O=udun tests,C=CN")), customer=CUSTOMER)
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
    rec = ca.issue(build_csr(key, parse_name("CN=Challenge Customer,O=udun tests,C=CN")), customer=CUSTOMER)

    def pay(challenge: str | None) -> dict:  # type: ignore[type-arg]
        tx = sample_tx(challenge=challenge) if challenge else sample_tx()
        return _verify(client, sign_data(key, rec.der, ca.chain_der(), tx.canonical_bytes(), signing_time=now()))

    made = client.post("/api/v1/challenges")
    assert made.status_code == 201
    challenge = made.get_json()["challenge"]
    assert pay(challenge)["status"] == "TOTAL_PASSED"
    assert pay(challenge)["sub_indication"] == "CHALLENGE_USED"        # another payment, same challenge
    assert pay("A" * 32)["sub_indication"] == "CHALLENGE_UNKNOWN"
    from ca.storage.evidence import EvidenceStore

    from ca.banks import Banks

    bank_id = Banks(ca.store, ca.clock).bank("testbank").id
    EvidenceStore(ca.store).add_challenge("expired-challenge-0001", bank_id, now() - timedelta(minutes=10),
                                          now() - timedelta(minutes=5), quota=10)
    assert pay("expired-challenge-0001")["sub_indication"] == "CHALLENGE_EXPIRED"


class _Clock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def test_evidence_outlives_revocation_and_expiry(settings, ca, bank_key, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
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
    # The CA side's job (`udun ca jobs`), run at the later moments: CRLs that are due.
    jobs = Revocation(later)
    jobs.current("root")
    verifier = Verifier(ChainValidator(TrustStore.from_certs(ca.chain_der())), clock=clock,
                        status=status_source(Responder(later)), signing_window=timedelta(minutes=5))
    client = create_app(settings, ca=later, verifier=verifier).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {bank_key}"
    key = SoftwareKey()
    rec = later.issue(build_csr(key, parse_name("CN=Time Traveller,O=udun tests,C=CN")), customer=CUSTOMER)
    try:
        cms = sign_data(key, rec.der, ca.chain_der(), sample_tx().canonical_bytes(), signing_time=clock())
        answer = _verify(client, cms)
        assert answer["status"] == "TOTAL_PASSED", answer["message"]

        clock.moment += timedelta(hours=1)                      # compromise reported after signing
        jobs.current("root")
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
        jobs.current("root")
        late = sign_data(key, rec.der, ca.chain_der(), sample_tx().canonical_bytes(), signing_time=clock())
        refused = _verify(client, late)
        assert (refused["status"], refused["sub_indication"]) == ("TOTAL_FAILED", "REVOKED")
        assert refused["evidence_id"] is None
    finally:
        # CRLs at today's time again for the tests that follow (the root's too: the issuing
        # CA's status was read from a root CRL the later CA published a day ahead)
        Revocation(ca).publish()
        Revocation(ca).publish("root")


def _pem(der: bytes) -> bytes:
    from asn1crypto import pem

    return pem.armor("CERTIFICATE", der)  # type: ignore[no-any-return]


def test_same_payment_at_the_same_moment_from_two_servers(ca, home: Path, enrolled, settings, bank_key) -> None:  # type: ignore[no-untyped-def]
    """Two server processes get the same payments at the same moment: one record each."""
    from ca.storage.evidence import EvidenceStore
    from signer.signing import sign_transaction

    payments = [(tx, sign_transaction(settings, "user-ec", PIN, tx)) for tx in (sample_tx() for _ in range(12))]
    with running_server(home, workers=1) as (one, _), \
            running_server(home, workers=1) as (two, _):
        for tx, cms in payments:
            barrier = threading.Barrier(2)
            answers: list[dict] = []  # type: ignore[type-arg]

            def post(base: str, body: bytes = cms) -> None:
                req = urllib.request.Request(f"{base}/api/v1/verify", data=body,
                                             headers={"Content-Type": "application/pkcs7-mime",
                                                      "Authorization": f"Bearer {bank_key}"})
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
    as_json = udun("evidence", "list", "--limit", "10000", "--json")
    records = [json.loads(line) for line in as_json.stdout.decode().splitlines()]
    mine = next(r for r in records if r["evidence_id"] == evidence_id)
    assert set(mine) == {"evidence_id", "received_at", "bank", "signer_serial", "tx_id"} and mine["bank"] == "testbank"
    assert mine["received_at"].endswith("Z") and mine["tx_id"] and mine["signer_serial"]
    out = tmp_path / "exported.zip"
    proc = udun("evidence", "export", evidence_id, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    ok = udun("evidence", "verify", str(out))
    assert ok.returncode == 0 and f"evidence bundle {evidence_id} OK".encode() in ok.stdout, ok.stdout + ok.stderr
    missing = udun("evidence", "export", "ev_000000000000nothing")
    assert missing.returncode == 2 and b"[not-found]" in missing.stderr
    unpinned = udun("evidence", "verify", str(out), env={"UDUN_HOME": str(tmp_path / "empty-home")})
    assert unpinned.returncode == 2 and b"--trust" in unpinned.stderr
