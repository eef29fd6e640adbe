"""Acceptance 2: the real openssl binary accepts what we make, and we accept what it makes."""
from __future__ import annotations

from pathlib import Path

import pytest
from asn1crypto import pem

from helpers import CUSTOMER, PIN, USERS, openssl, sample_tx, udun, write

LABELS = list(USERS)


@pytest.fixture(scope="module")
def pki_files(ca, home: Path) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    issuing, root = ca.chain_der()
    d = home / "interop"
    d.mkdir(exist_ok=True)
    return {
        "root": write(d / "root.pem", pem.armor("CERTIFICATE", root)),
        "issuing": write(d / "issuing.pem", pem.armor("CERTIFICATE", issuing)),
        "dir": d,
    }


@pytest.mark.parametrize("label", LABELS)
def test_openssl_req_verify_accepts_our_csr(label: str, enrolled, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path / "req.der", enrolled[label].csr_der)
    proc = openssl("req", "-verify", "-inform", "DER", "-in", str(path), "-noout")
    assert proc.returncode == 0, proc.stderr
    assert b"verify OK" in proc.stdout + proc.stderr


@pytest.mark.parametrize("label", LABELS)
def test_openssl_verify_x509_strict_accepts_our_chain(label: str, enrolled, pki_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    leaf = write(tmp_path / "leaf.pem", pem.armor("CERTIFICATE", enrolled[label].cert_der))
    proc = openssl("verify", "-x509_strict", "-CAfile", str(pki_files["root"]),
                   "-untrusted", str(pki_files["issuing"]), str(leaf))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith(b": OK")


def test_openssl_verify_x509_strict_accepts_issuing_ca(pki_files) -> None:  # type: ignore[no-untyped-def]
    proc = openssl("verify", "-x509_strict", "-CAfile", str(pki_files["root"]), str(pki_files["issuing"]))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("detached", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("label", LABELS)
def test_openssl_cms_verify_accepts_our_cms(label: str, detached: bool, settings, enrolled, pki_files,  # type: ignore[no-untyped-def]
                                            tmp_path: Path) -> None:
    from signer.signing import sign_transaction

    tx = sample_tx()
    der = sign_transaction(settings, label, PIN, tx, detached=detached, scheme=enrolled[label].scheme)
    sig = write(tmp_path / "tx.p7s", der)
    out = tmp_path / "out.bin"
    args = ["cms", "-verify", "-cades", "-binary", "-purpose", "any", "-CAfile", str(pki_files["root"]),
            "-inform", "DER", "-in", str(sig), "-out", str(out)]
    if detached:
        args += ["-content", str(write(tmp_path / "tx.json", tx.canonical_bytes()))]
    proc = openssl(*args)
    assert proc.returncode == 0, proc.stderr
    assert b"Verification successful" in proc.stderr
    assert out.read_bytes() == tx.canonical_bytes()


@pytest.mark.parametrize("key_alg", ["EC", "RSA"])
@pytest.mark.parametrize("mode", ["attached", "detached", "streamed-ber"])
def test_udun_verify_accepts_openssl_cades(key_alg: str, mode: str, ca, pki_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """openssl makes the key, the CSR and the CMS; our CA issues; `udun verify` accepts.

    streamed-ber: `-stream` makes OpenSSL write indefinite-length BER, which we accept too.
    """
    detached = mode == "detached"
    key = tmp_path / "key.pem"
    genargs = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"] if key_alg == "EC" else \
        ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    assert openssl("genpkey", *genargs, "-out", str(key)).returncode == 0
    req = tmp_path / "req.pem"
    proc = openssl("req", "-new", "-key", str(key), "-subj", "/CN=OpenSSL Peer/O=interop/C=CN",
                   "-utf8", "-out", str(req))
    assert proc.returncode == 0, proc.stderr
    rec = ca.issue(pem.unarmor(req.read_bytes())[2], "client", requester="pytest", customer=CUSTOMER)
    cert = write(tmp_path / "cert.pem", pem.armor("CERTIFICATE", rec.der))
    content = write(tmp_path / "tx.json", sample_tx().canonical_bytes())
    sig = tmp_path / "tx.p7s"
    args = ["cms", "-sign", "-cades", "-binary", "-md", "sha256", "-signer", str(cert), "-inkey", str(key),
            "-certfile", str(pki_files["issuing"]), "-in", str(content), "-outform", "DER", "-out", str(sig)]
    if not detached:
        args.append("-nodetach")
    if mode == "streamed-ber":
        args.append("-stream")
    proc = openssl(*args)
    if mode == "streamed-ber":
        assert sig.read_bytes()[:2] == b"\x30\x80", "expected indefinite-length BER"
    assert proc.returncode == 0, proc.stderr
    vargs = ["verify", str(sig)]                 # trust and status: this home's CA and responder
    if detached:
        vargs += ["--content", str(content)]
    result = udun(*vargs)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(b"TOTAL_PASSED")
