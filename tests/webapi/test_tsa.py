"""Issue 5: the RFC 3161 time-stamp authority, against `openssl ts` and `curl`, over HTTP."""
from __future__ import annotations

import hashlib
import subprocess
import urllib.request
from pathlib import Path

import pytest
from asn1crypto import pem, tsp as asn1tsp

from helpers import lint, openssl, running_server, udun, write


@pytest.fixture(scope="module")
def server(ca, home: Path):  # type: ignore[no-untyped-def]

    with running_server(home) as (base, _proc):
        yield base


@pytest.fixture(scope="module")
def files(ca, server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("tsa")
    tsa_chain = d / "tsa-chain.pem"
    proc = udun("tsa", "cert", "-o", str(tsa_chain))
    assert proc.returncode == 0, proc.stderr
    return {"dir": d, "root": write(d / "root.pem", pem.armor("CERTIFICATE", ca.chain_der()[1])),
            "tsa_chain": tsa_chain, "data": write(d / "payment.json", b'{"pay":"1234.50 CNY"}')}


def _curl(server: str, query_cmd: str, out: Path) -> None:
    """The acceptance pipeline: `openssl ts -query ... | curl --data-binary @- URL`."""
    subprocess.run(["bash", "-c", f"set -o pipefail; {query_cmd} | curl -sS -f --data-binary @- "
                                  f"-H 'Content-Type: application/timestamp-query' -o {out} {server}/tsa"],
                   check=True, timeout=60)


def test_openssl_query_reply_and_verify(server: str, files) -> None:  # type: ignore[no-untyped-def]
    from pkicore.oids import DEFAULT_TSA_POLICY

    d = files["dir"]
    _curl(server, f"openssl ts -query -data {files['data']} -sha256 -cert", d / "r.tsr")
    text = openssl("ts", "-reply", "-in", str(d / "r.tsr"), "-text").stdout.decode()
    assert "Status: Granted." in text
    assert f"Policy OID: {DEFAULT_TSA_POLICY}" in text
    assert "Accuracy: 0x01 seconds" in text
    assert "Nonce: 0x" in text and "TSA: DirName:" in text
    proc = openssl("ts", "-verify", "-data", str(files["data"]), "-in", str(d / "r.tsr"), "-CAfile",
                   str(files["root"]), "-untrusted", str(files["tsa_chain"]))
    assert b"Verification: OK" in proc.stdout, proc.stdout + proc.stderr


def test_query_file_nonce_and_no_cert(server: str, files) -> None:  # type: ignore[no-untyped-def]
    d = files["dir"]
    openssl("ts", "-query", "-data", str(files["data"]), "-sha512", "-out", str(d / "q.tsq"))   # no -cert
    _curl(server, f"cat {d / 'q.tsq'}", d / "q.tsr")
    resp = asn1tsp.TimeStampResp.load((d / "q.tsr").read_bytes())
    signed = resp["time_stamp_token"]["content"]
    assert not signed["certificates"]                          # certReq false: no certificates
    nonce = asn1tsp.TimeStampReq.load((d / "q.tsq").read_bytes())["nonce"].native
    assert signed["encap_content_info"]["content"].parsed["nonce"].native == nonce
    proc = openssl("ts", "-verify", "-queryfile", str(d / "q.tsq"), "-in", str(d / "q.tsr"), "-CAfile",
                   str(files["root"]), "-untrusted", str(files["tsa_chain"]))
    assert b"Verification: OK" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("query, fail_info", [
    ("-sha1", "unrecognized or unsupported algorithm identifier"),                 # badAlg
    ("-sha256 -tspolicy 1.2.3.4", "the requested TSA policy is not supported"),   # unacceptedPolicy
    # udun's records policy (evidence manifests, audit checkpoints) is granted to nobody
    ("-sha256 -tspolicy 2.25.186103448224315384127420651869011474787.1", "the requested TSA policy is not supported"),
])
def test_refusals_are_rejections_openssl_reads(server: str, files, query: str, fail_info: str) -> None:  # type: ignore[no-untyped-def]
    d = files["dir"]
    out = d / f"refused-{len(fail_info)}.tsr"
    _curl(server, f"openssl ts -query -data {files['data']} {query}", out)
    text = openssl("ts", "-reply", "-in", str(out), "-text").stdout.decode()
    assert "Status: Rejected." in text and f"Failure info: {fail_info}" in text, text


@pytest.mark.parametrize("body", [b"garbage", b"\x30\x03\x02\x01\x01", b"\x30" * 40])
def test_garbage_is_a_rejection_never_500(server: str, body: bytes, tmp_path: Path) -> None:
    req = urllib.request.Request(f"{server}/tsa", data=body, headers={"Content-Type": "application/timestamp-query"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/timestamp-reply"
        answer = write(tmp_path / "answer.tsr", resp.read())
    text = openssl("ts", "-reply", "-in", str(answer), "-text").stdout.decode()
    assert "Status: Rejected." in text and "Failure info: the data submitted has the wrong format" in text, text


def test_udun_tsa_query_and_verify(server: str, files) -> None:  # type: ignore[no-untyped-def]
    d = files["dir"]
    reply = d / "udun.tsr"
    proc = udun("tsa", "query", str(files["data"]), "--url", f"{server}/tsa", "-o", str(reply))
    assert proc.returncode == 0, proc.stderr
    assert b"time-stamped at" in proc.stderr
    ok = udun("tsa", "verify", str(reply), "--data", str(files["data"]))
    assert ok.returncode == 0 and b"time-stamp OK" in ok.stdout, ok.stdout + ok.stderr
    other = write(d / "other.json", b'{"pay":"9999.00 CNY"}')
    bad = udun("tsa", "verify", str(reply), "--data", str(other))
    assert bad.returncode == 1 and b"FAILED" in bad.stdout


def test_serials_unique_and_certificate_profile(ca, files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from asn1crypto import x509

    from ca.tsa import TimeStampAuthority
    from pkicore import tsp

    tsa = TimeStampAuthority(ca)
    serials = set()
    for i in range(300):
        stamp = tsa.stamp(hashlib.sha256(b"%d" % i).digest())
        check = tsp.check_token(stamp.token)
        assert check.ok and check.info is not None
        serials.add(check.info.serial)
    assert len(serials) == 300
    cert = x509.Certificate.load(tsa.certificate())
    eku = next(e for e in cert["tbs_certificate"]["extensions"] if e["extn_id"].native == "extended_key_usage")
    assert eku["critical"].native is True and eku["extn_value"].native == ["time_stamping"]
    proc = lint(write(tmp_path / "tsa.pem", pem.armor("CERTIFICATE", tsa.certificate())))
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr
