"""Review findings on evidence bundles (issue 9), as tests: forgeries that passed.

1. A bank trusting udun's root and a partner CA's: the partner certifies a TSA of its own,
   back-dates a time-stamp and stamps a forged bundle under udun's records policy.
2. A local zip entry the central directory does not list: streaming extractors see it,
   zipfile does not.
"""
from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
from datetime import timedelta

from helpers import CUSTOMER, SoftwareKey, issue_with, make_root, now, sample_tx

def _verify_api(client, cms: bytes) -> dict:  # type: ignore[no-untyped-def,type-arg]
    r = client.post("/api/v1/verify", data=cms, content_type="application/pkcs7-mime")
    assert r.status_code == 200, r.get_data()
    return r.get_json()  # type: ignore[no-any-return]


def _bundle(client, eid: str) -> tuple[bytes, str, dict[str, bytes]]:  # type: ignore[no-untyped-def]
    r = client.get(f"/api/v1/evidence/{eid}")
    assert r.status_code == 200
    data = r.get_data()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    folder = next(iter(members)).split("/", 1)[0]
    return data, folder, {k.split("/", 1)[1]: v for k, v in members.items()}


def _rezip(folder: str, files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, d in files.items():
            z.writestr(f"{folder}/{name}", d)
    return out.getvalue()


def test_a_tsa_of_another_trusted_ca_makes_no_evidence(bank_key, settings, ca, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from asn1crypto import pem, x509

    from ca import profiles
    from ca.bundle import with_certificates
    from ca.revocation import Revocation
    from helpers import udun, write
    from pkicore import cms_view, tsp
    from pkicore.algorithms import default_scheme
    from pkicore.bundle_check import verify_bundle
    from pkicore.cms_build import sign_data
    from pkicore.oids import RECORDS_POLICY
    from pkicore.x509build import build_csr, key_identifier, parse_name

    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {bank_key}"
    key = SoftwareKey()
    rec = ca.issue(build_csr(key, parse_name("CN=Victim Customer,O=udun tests,C=CN")), "client", requester="pytest",
                   customer=CUSTOMER)
    ans = _verify_api(client, sign_data(key, rec.der, ca.chain_der(), sample_tx().canonical_bytes(),
                                        signing_time=now()))
    assert ans["status"] == "TOTAL_PASSED", ans["message"]
    _, folder, f = _bundle(client, ans["evidence_id"])
    genuine_at = tsp.check_token(f["timestamp.tst"]).info.gen_time  # type: ignore[union-attr]
    Revocation(ca).revoke(rec.serial, "keyCompromise")
    tx2 = sample_tx(amount="999999.00")
    cms2 = sign_data(key, rec.der, ca.chain_der(), tx2.canonical_bytes(), signing_time=genuine_at)
    assert _verify_api(client, cms2)["status"] != "TOTAL_PASSED"

    # The partner root certifies a TSA of its own and stamps, back-dated, a forged bundle.
    rkey, tkey = SoftwareKey(), SoftwareKey()
    root = make_root(rkey, "Partner Root")
    ext = profiles.extensions(settings, profiles.tsa_profile(settings), key_identifier(tkey.public_key_der),
                              x509.Certificate.load(root).key_identifier)
    tsa_cert = issue_with(rkey, root, tkey.public_key_der, extensions=ext, cn="Partner TSA",
                          not_before=now() - timedelta(days=2), days=365)
    factory = tsp.TokenFactory(tkey, default_scheme(tkey.key_type), tsa_cert, [root], "1.2.3.4")

    def token(imprint: bytes, policy: str | None = None, at=None) -> bytes:  # type: ignore[no-untyped-def]
        return factory.token(hash_name="sha256", imprint=imprint, serial=12345, gen_time=at or now(),
                             nonce=None, cert_req=True, policy=policy)

    sig = cms_view.view(cms2).signers[0].signature
    tst = token(hashlib.sha256(sig).digest(), at=genuine_at + timedelta(seconds=1))
    f = dict(f)
    f.pop("SHA256SUMS.tst", None)
    f.update({"payment.json": tx2.canonical_bytes(), "signature.p7s": cms2, "signature-value.bin": sig,
              "signature-t.p7s": with_certificates(tsp.add_unsigned_attribute(cms2, tsp.ID_AA_TIME_STAMP_TOKEN, tst),
                                                   [ca.chain_der()[0]]),
              "timestamp.tst": tst, "tsa-chain.pem": pem.armor("CERTIFICATE", tsa_cert)})
    f["SHA256SUMS"] = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(f.items())
                              if n not in ("SHA256SUMS", "manifest.json", "manifest.tst")).encode()
    m = json.loads(f["manifest.json"])
    m["files"] = {n: hashlib.sha256(d).hexdigest() for n, d in sorted(f.items())
                  if n not in ("manifest.json", "manifest.tst")}
    f["manifest.json"] = json.dumps(m, indent=2, sort_keys=True).encode() + b"\n"
    f["manifest.tst"] = token(hashlib.sha256(f["manifest.json"]).digest(), policy=RECORDS_POLICY)
    forged = _rezip(folder, f)

    udun_root = ca.chain_der()[1]
    verdict = verify_bundle(forged, [udun_root, root], now(), tsa_trust=[udun_root])
    assert not verdict.ok and verdict.problems[0].startswith("manifest.tst"), verdict.problems
    # The CLI: several roots in --trust, udun's TSA root from this UDUN_HOME (or --tsa-trust).
    trust = write(tmp_path / "trust.pem", b"".join(pem.armor("CERTIFICATE", d) for d in (udun_root, root)))
    bundle = write(tmp_path / "forged.zip", forged)
    proc = udun("evidence", "verify", str(bundle), "--trust", str(trust))
    assert proc.returncode == 1 and b"FAILED: manifest.tst" in proc.stdout, proc.stdout + proc.stderr
    both = udun("evidence", "verify", str(bundle), "--trust", str(trust), "--tsa-trust", str(trust))
    assert both.returncode == 2 and b"tsa" in both.stderr.lower(), both.stderr   # two roots: name one


def test_a_local_entry_the_directory_does_not_list_is_refused(bank_key, settings, enrolled, app, ca) -> None:  # type: ignore[no-untyped-def]
    from helpers import PIN
    from pkicore.bundle_check import verify_bundle
    from signer.signing import sign_transaction

    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {bank_key}"
    ans = _verify_api(client, sign_transaction(settings, "user-ec", PIN, sample_tx()))
    data, folder, f = _bundle(client, ans["evidence_id"])
    assert verify_bundle(data, ca.chain_der()[1:], now()).ok
    # A second payment.json (9234.50) as a local entry between the last entry and the directory.
    eocd = data.rfind(b"PK\x05\x06")
    cd_size, cd_off = struct.unpack("<II", data[eocd + 12:eocd + 20])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo(f"{folder}/payment.json", (2000, 1, 1, 0, 0, 0)),
                   f["payment.json"].replace(b'"1234.50"', b'"9234.50"'))
    extra = out.getvalue()
    shadow = extra[:extra.rfind(b"PK\x01\x02")]
    forged = data[:cd_off] + shadow + data[cd_off:eocd + 12] + struct.pack("<II", cd_size, cd_off + len(shadow)) \
        + data[eocd + 20:]
    verdict = verify_bundle(forged, ca.chain_der()[1:], now())
    assert not verdict.ok and "plain zip" in verdict.problems[0], verdict.problems
    trailing = verify_bundle(data + b"junk", ca.chain_der()[1:], now())
    assert not trailing.ok
