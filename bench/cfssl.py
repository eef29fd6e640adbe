"""cfssl (Debian `golang-cfssl`) as a peer: a CA issuing over HTTP into its SQLite
certificate database, and its OCSP responder serving what it pre-signed.

The set-up, all in files under the bench's work directory:
- a P-256 CA key in a PEM file (cfssl's keys are files; udun's CA key is on a SoftHSM
  token and signs through PKCS#11) and a self-signed CA certificate, pathLen 0;
- a delegated OCSP responder (P-256 key in a file, certificate with id-kp-OCSPSigning,
  issued by that CA), as udun's responder is delegated;
- a signing profile close to udun's client profile: keyUsage digitalSignature +
  nonRepudiation (cfssl spells it "content committment"), extKeyUsage clientAuth, OCSP,
  CRL and caIssuers URLs, 2 years; cfssl's 20-octet random serials (udun: 126 bits). cfssl
  has no documentSigning EKU and lints nothing (udun runs its RFC 5280 lint on each TBS);
- the certificate database: SQLite with cfssl's own schema (CERTDB_SCHEMA below), in WAL
  mode with synchronous=NORMAL given in the data source (go-sqlite3's `_journal_mode` and
  `_synchronous`), the settings udun's SQLite engine uses (ca/storage/engine.py), so that
  neither side pays an fsync per certificate the other does not; `_busy_timeout` so that
  cfssl's connection pool waits for the write lock instead of failing.

`cfssl serve -db-config` writes every certificate it signs into the database before it
answers (its signer's InsertCertificate). It is one Go process and uses every core
(GOMAXPROCS defaults to the core count; set here explicitly to the same number of workers
udun gets). `cfssl ocsprefresh` signs an OCSP response for every unexpired certificate of
the database, `cfssl ocspdump` writes them out, and `cfssl ocspserve -responses` answers
from that file, held in memory (GET and POST, no nonce: RFC 5019).
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.measure import log
from bench.procs import PeerProcess

# cfssl's certdb/sqlite/migrations/001_CreateCertificates.sql as of the snapshot Debian
# packages (1.2.0+git20160825): its INSERT names exactly these columns (created_at and the
# metadata columns came later). Applied here instead of with goose, which Debian lacks.
CERTDB_SCHEMA = """
CREATE TABLE certificates (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  ca_label                 blob,
  status                   blob NOT NULL,
  reason                   int,
  expiry                   timestamp,
  revoked_at               timestamp,
  pem                      blob NOT NULL,
  PRIMARY KEY(serial_number, authority_key_identifier)
);

CREATE TABLE ocsp_responses (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  body                     blob NOT NULL,
  expiry                   timestamp,
  PRIMARY KEY(serial_number, authority_key_identifier),
  FOREIGN KEY(serial_number, authority_key_identifier) REFERENCES certificates(serial_number, authority_key_identifier)
);
"""

SIGN_PATH = "/api/v1/cfssl/sign"


def find_cfssl() -> str:
    """The cfssl binary, or RuntimeError saying how to get it (scripts/bootstrap.sh does)."""
    found = shutil.which("cfssl")
    if not found:
        raise RuntimeError("cfssl is not installed (apt-get install golang-cfssl; `make bench` runs "
                           "scripts/bootstrap.sh, which installs it)")
    return found


def _write_key(path: Path, key: object) -> None:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,   # type: ignore[attr-defined]
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def make_ca(directory: Path, cn: str) -> tuple[Path, Path, Path, Path]:
    """A software P-256 CA (pathLen 0) and a delegated OCSP responder it certifies, in PEM
    files: (ca.pem, ca-key.pem, responder.pem, responder-key.pem). Shared with the openssl
    peer (bench/openssl_peer.py)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "udun bench peers"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    r_key = ec.generate_private_key(ec.SECP256R1())
    responder = (x509.CertificateBuilder()
                 .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "udun bench peers"),
                                          x509.NameAttribute(NameOID.COMMON_NAME, f"{cn} OCSP responder")]))
                 .issuer_name(name).public_key(r_key.public_key()).serial_number(x509.random_serial_number())
                 .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=7))
                 .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                              data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                              crl_sign=False, encipher_only=False, decipher_only=False),
                                critical=True)
                 .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
                 .add_extension(x509.OCSPNoCheck(), critical=False)
                 .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                critical=False)
                 .sign(ca_key, hashes.SHA256()))
    paths = (directory / "ca.pem", directory / "ca-key.pem", directory / "responder.pem",
             directory / "responder-key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(paths[1], ca_key)
    paths[2].write_bytes(responder.public_bytes(serialization.Encoding.PEM))
    _write_key(paths[3], r_key)
    return paths


def pem_to_der(path: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(serialization.Encoding.DER)


@dataclass
class Cfssl:
    """cfssl's CA, responder, signing profile and certificate database in ``directory``."""

    exe: str
    directory: Path
    ca_pem: Path
    ca_key: Path
    responder_pem: Path
    responder_key: Path
    db: Path
    workers: int
    base_url: str = "http://127.0.0.1:9"

    @classmethod
    def create(cls, work: Path, workers: int, base_url: str) -> "Cfssl":
        exe = find_cfssl()
        directory = work / "cfssl"
        ca_pem, ca_key, r_pem, r_key = make_ca(directory, "cfssl bench CA")
        db = directory / "certdb.sqlite"
        conn = sqlite3.connect(db)
        try:
            conn.execute("PRAGMA journal_mode=WAL")   # kept in the file: cfssl's connections get WAL
            conn.executescript(CERTDB_SCHEMA)
        finally:
            conn.close()
        (directory / "db-config.json").write_text(json.dumps({
            "driver": "sqlite3",
            "data_source": f"file:{db}?_journal_mode=WAL&_synchronous=NORMAL&_busy_timeout=10000"}))
        (directory / "config.json").write_text(json.dumps({"signing": {"default": {
            "usages": ["digital signature", "content committment", "client auth"],
            "expiry": "17520h",
            "ocsp_url": f"{base_url}/ocsp",
            "crl_url": f"{base_url}/crl/cfssl-ca.crl",
            "issuer_urls": [f"{base_url}/ca/cfssl-ca.crt"],
        }}}))
        version = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=30).stdout
        log(f"cfssl: {' '.join(version.split())}; CA and responder keys (P-256) in files under {directory}")
        return cls(exe, directory, ca_pem, ca_key, r_pem, r_key, db, workers, base_url)

    @property
    def ca_der(self) -> bytes:
        return pem_to_der(self.ca_pem)

    def _env(self) -> dict[str, str]:
        return {**os.environ, "GOMAXPROCS": str(self.workers)}

    def serve(self, port: int) -> PeerProcess:
        """`cfssl serve` with the CA key file and the certificate database."""
        cmd = [self.exe, "serve", "-address", "127.0.0.1", "-port", str(port), "-ca", str(self.ca_pem),
               "-ca-key", str(self.ca_key), "-config", str(self.directory / "config.json"),
               "-db-config", str(self.directory / "db-config.json")]
        return PeerProcess("cfssl serve", cmd, self.directory / f"serve-{port}.log",
                           f"http://127.0.0.1:{port}/api/v1/cfssl/info", cwd=self.directory, env=self._env())

    def rows(self) -> int:
        """Certificates in cfssl's database."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            return int(conn.execute("SELECT count(*) FROM certificates").fetchone()[0])
        finally:
            conn.close()

    def first_certificate(self) -> bytes:
        """DER of one certificate cfssl issued and stored (the one the OCSP figures ask about)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            row = conn.execute("SELECT pem FROM certificates LIMIT 1").fetchone()
        finally:
            conn.close()
        if row is None:
            raise RuntimeError("cfssl's database holds no certificate")
        pem = row[0] if isinstance(row[0], bytes) else str(row[0]).encode()
        return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)

    def issue_one(self) -> None:
        """One certificate into the database with `cfssl sign -db-config` (when the issuance
        pair did not run, the OCSP pair still has a certificate to ask about)."""
        from bench.issuance_load import make_csrs, pem_csr

        csr = self.directory / "one.csr"
        csr.write_text(pem_csr(make_csrs(1)[0]))
        subprocess.run([self.exe, "sign", "-ca", str(self.ca_pem), "-ca-key", str(self.ca_key), "-config",
                        str(self.directory / "config.json"), "-db-config", str(self.directory / "db-config.json"),
                        str(csr)], check=True, capture_output=True, timeout=60, env=self._env())

    def ocsp_responses(self) -> Path:
        """`cfssl ocsprefresh` (a response signed for every certificate of the database),
        then `cfssl ocspdump` into the file `ocspserve -responses` reads."""
        db_config = str(self.directory / "db-config.json")
        if self.rows() == 0:
            self.issue_one()
        subprocess.run([self.exe, "ocsprefresh", "-db-config", db_config, "-ca", str(self.ca_pem),
                        "-responder", str(self.responder_pem), "-responder-key", str(self.responder_key)],
                       check=True, capture_output=True, timeout=600, env=self._env())
        out = self.directory / "ocsp-responses.txt"
        with open(out, "wb") as f:
            subprocess.run([self.exe, "ocspdump", "-db-config", db_config], check=True, stdout=f,
                           stderr=subprocess.PIPE, timeout=600, env=self._env())
        count = len(out.read_bytes().split())
        log(f"cfssl: ocsprefresh and ocspdump wrote {count} OCSP responses ({self.rows()} certificates)")
        if count == 0:
            raise RuntimeError("cfssl ocspdump wrote no OCSP response")
        return out

    def ocspserve(self, port: int, responses: Path) -> PeerProcess:
        cmd = [self.exe, "ocspserve", "-address", "127.0.0.1", "-port", str(port), "-responses", str(responses)]
        return PeerProcess("cfssl ocspserve", cmd, self.directory / f"ocspserve-{port}.log",
                           f"http://127.0.0.1:{port}/", cwd=self.directory, env=self._env())
