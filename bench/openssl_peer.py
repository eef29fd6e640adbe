"""`openssl ocsp` as an OCSP responder peer: it signs every answer as it is asked, so it
is the peer of udun's OCSP with a nonce (every answer signed afresh, on udun's side by the
delegated responder key on the online token).

    openssl ocsp -index index.txt -CA ca.pem -rsigner responder.pem -rkey responder-key.pem
                 -port N -nmin 60 -multi W

A software P-256 CA and delegated responder (keys in PEM files; bench/cfssl.make_ca), one
good P-256 leaf certificate listed `V` in the index, answers valid 60 minutes (udun's
default UDUN_OCSP_MINUTES). One openssl ocsp process answers one request at a time;
`-multi W` (OpenSSL 3.0 and later) runs W responder processes on the same socket, and W is
the number of workers udun gets (one per core). openssl copies the request's nonce into
the answer. It listens on every interface (-port takes no address): a loopback-only bench
on an ephemeral port. The CRL peer, `openssl ca -gencrl`, lives with the CRL figures in
bench/crl.py.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.cfssl import make_ca, pem_to_der
from bench.measure import log
from bench.procs import PeerProcess


def _has_multi() -> bool:
    out = subprocess.run(["openssl", "ocsp", "-help"], capture_output=True, text=True, timeout=30)
    return "-multi" in (out.stdout + out.stderr)


@dataclass
class OpensslOcsp:
    """The openssl responder's CA, responder, leaf and index in ``directory``."""

    directory: Path
    ca_pem: Path
    responder_pem: Path
    responder_key: Path
    leaf_der: bytes
    workers: int

    @classmethod
    def create(cls, work: Path, workers: int) -> "OpensslOcsp":
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        if not shutil.which("openssl"):
            raise RuntimeError("openssl is not installed")
        directory = work / "openssl-ocsp"
        ca_pem, ca_key_path, r_pem, r_key = make_ca(directory, "openssl bench CA")
        ca = x509.load_pem_x509_certificate(ca_pem.read_bytes())
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        now = datetime.now(timezone.utc)
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "udun bench bank"),
                                         x509.NameAttribute(NameOID.COMMON_NAME, "openssl bench leaf")]))
                .issuer_name(ca.subject).public_key(leaf_key.public_key())
                .serial_number(x509.random_serial_number() >> 33 | 1 << 125)   # 126 bits, as udun's
                .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=365))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(ca_key, hashes.SHA256()))   # type: ignore[arg-type]
        expiry = f"{leaf.not_valid_after_utc:%y%m%d%H%M%SZ}"
        (directory / "index.txt").write_text(f"V\t{expiry}\t\t{leaf.serial_number:X}\tunknown\t/CN=openssl bench leaf\n")
        multi = workers if workers > 1 and _has_multi() else 1
        if multi != workers:
            log(f"openssl ocsp: no -multi here: one responder process (udun has {workers} workers)")
        version = subprocess.run(["openssl", "version"], capture_output=True, text=True, timeout=30).stdout.strip()
        log(f"openssl ocsp: {version}; {multi} responder process(es); keys (P-256) in files under {directory}")
        return cls(directory, ca_pem, r_pem, r_key, leaf.public_bytes(serialization.Encoding.DER), multi)

    @property
    def ca_der(self) -> bytes:
        return pem_to_der(self.ca_pem)

    def serve(self, port: int) -> PeerProcess:
        cmd = ["openssl", "ocsp", "-index", str(self.directory / "index.txt"), "-CA", str(self.ca_pem),
               "-rsigner", str(self.responder_pem), "-rkey", str(self.responder_key), "-port", str(port),
               "-nmin", "60"]
        if self.workers > 1:
            cmd += ["-multi", str(self.workers)]
        log_path = self.directory / f"ocsp-{port}.log"

        def ready() -> bool:
            # the parent logs ACCEPT once the socket listens; its children then serve it
            try:
                return re.search(r"ACCEPT", log_path.read_text(errors="replace")) is not None
            except OSError:
                return False

        # With -multi, openssl puts itself and its children in a process group of its own
        # (setpgid): no session of ours then, or setpgid fails and openssl exits.
        return PeerProcess("openssl ocsp", cmd, log_path, f"http://127.0.0.1:{port}/", cwd=self.directory,
                           ready=ready, new_session=self.workers == 1)
