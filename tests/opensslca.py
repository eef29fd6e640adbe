"""A third-party ("CFCA-like") CA built with the real openssl binary, for interop tests.

Nothing here uses Python crypto to sign: keys, certificates and CRLs all come from
`openssl genpkey`, `openssl req` and `openssl ca`, so udun is tested against a CA it did
not write.  Python only parses certificates to find which CA database an entry lives in.

Typical use (the CRL server binds its port first, because the CDP URL goes into the
certificates):

    with CrlServer() as server:
        partner = OpenSslCa(tmp_path / "partner", "Partner CA", crl_base_url=server.url)
        server.directory = partner.published_dir
        cert_pem = partner.issue(csr_pem)
"""
from __future__ import annotations

import contextlib
import http.server
import os
import re
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

KeyKind = Literal["ec", "rsa"]
Which = Literal["root", "issuing"]
EKU_DEFAULT = "clientAuth,1.3.6.1.5.5.7.3.36"
# Reasons `openssl ca -crl_reason` accepts (certificateHold goes through hold(); removeFromCRL
# is only meaningful in delta CRLs, which openssl ca does not make).
REASONS = ("unspecified", "keyCompromise", "CACompromise", "affiliationChanged", "superseded",
           "cessationOfOperation")
OPENSSL = os.environ.get("OPENSSL", "openssl")
TIMEOUT = 60


def openssl_run(args: Sequence[str], *, config: Path | None = None, input: bytes | None = None,
                cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run openssl with check=True; a failure becomes an AssertionError showing stderr."""
    env = dict(os.environ)
    if config is not None:
        # Pin OPENSSL_CONF too, so a test-wide config (e.g. one loading the pkcs11 engine)
        # cannot leak into the third-party CA's commands.
        env["OPENSSL_CONF"] = str(config)
    cmd = [OPENSSL, *args]
    try:
        return subprocess.run(cmd, input=input, capture_output=True, check=True, env=env,
                              cwd=cwd, timeout=TIMEOUT)
    except subprocess.CalledProcessError as exc:
        raise AssertionError(
            f"openssl failed (rc={exc.returncode}): {' '.join(cmd)}\n"
            f"--- stderr ---\n{exc.stderr.decode(errors='replace')}"
            f"--- stdout ---\n{exc.stdout.decode(errors='replace')}") from exc


def _slugify(name: str) -> str:
    """Lower-case ASCII slug of a CA name, for file names and URLs."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "ca"


def _subj(*rdns: tuple[str, str]) -> str:
    """An `-subj` string, escaping the characters openssl treats as separators."""
    return "".join(f"/{k}=" + re.sub(r"([\\/+=,])", r"\\\1", v) for k, v in rdns)


def _asn1_time(when: datetime) -> str:
    """GeneralizedTime text for -startdate/-enddate/-crl_*update (openssl converts to UTCTime before 2050)."""
    if when.tzinfo is None:
        raise ValueError("use an aware datetime (UTC)")
    return when.astimezone(timezone.utc).strftime("%Y%m%d%H%M%SZ")


def _load_cert(cert_pem: bytes) -> x509.Certificate:
    """Parse a PEM (or DER) certificate."""
    if cert_pem.lstrip().startswith(b"-----"):
        return x509.load_pem_x509_certificate(cert_pem)
    return x509.load_der_x509_certificate(cert_pem)


def _ski(cert: x509.Certificate) -> bytes | None:
    """subjectKeyIdentifier, if present."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def _aki(cert: x509.Certificate) -> bytes | None:
    """authorityKeyIdentifier keyIdentifier, if present."""
    try:
        return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return None


class OpenSslCa:
    """Root + issuing CA made and operated by `openssl req` / `openssl ca` in one directory."""

    def __init__(self, directory: Path, name: str = "Partner CA", *, key_type: KeyKind = "ec",
                 rsa_bits: int = 2048, crl_base_url: str = "http://127.0.0.1:8081",
                 country: str = "CN", slug: str | None = None, crl_days: int = 1,
                 root_days: int = 3650, issuing_days: int = 1825) -> None:
        if key_type not in ("ec", "rsa"):
            raise ValueError(f"key_type must be 'ec' or 'rsa', not {key_type!r}")
        if key_type == "rsa" and rsa_bits not in (2048, 3072, 4096):
            raise ValueError(f"unsupported RSA size {rsa_bits}")
        self.directory = Path(directory).resolve()
        if self.directory.exists() and any(self.directory.iterdir()):
            # A half-reused directory would mix two CAs' databases; make that loud.
            raise FileExistsError(f"{self.directory} is not empty")
        self.name = name
        self.slug = slug or _slugify(name)
        self.key_type: KeyKind = key_type
        self.rsa_bits = rsa_bits
        self.crl_base_url = crl_base_url.rstrip("/")
        self.country = country
        self.crl_days = crl_days
        # openssl ca reads and rewrites index.txt/crlnumber non-atomically as a whole;
        # serialise our own calls so threaded tests cannot interleave two writers.
        self._lock = threading.RLock()
        self._counter = 0
        self.published_dir = self.directory / "published"
        self.work_dir = self.directory / "work"
        for sub in ("root/certs", "issuing/certs", "published", "work"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        for which in ("root", "issuing"):
            d = self._ca_dir(which)
            (d / "index.txt").write_bytes(b"")
            # Several certificates may share a subject (re-enrolment of one customer).
            (d / "index.txt.attr").write_text("unique_subject = no\n")
            # Unused while -rand_serial is given, but `openssl ca` without it still works.
            (d / "serial").write_text(os.urandom(16).hex().upper() + "\n")
            (d / "crlnumber").write_text("01\n")
        self.config_path.write_text(self._config(), encoding="utf-8")
        self._build(root_days, issuing_days)
        self.publish_crls()

    # ------------------------------------------------------------------ paths
    def _ca_dir(self, which: str) -> Path:
        """Directory of one CA's database and key."""
        return self.directory / which

    @property
    def config_path(self) -> Path:
        """The openssl.cnf shared by both CAs (sections root_ca / issuing_ca)."""
        return self.directory / "openssl.cnf"

    @property
    def root_cert_path(self) -> Path:
        """Root certificate (PEM)."""
        return self._ca_dir("root") / "cert.pem"

    @property
    def root_key_path(self) -> Path:
        """Root private key (PEM, unencrypted: test fixture)."""
        return self._ca_dir("root") / "key.pem"

    @property
    def issuing_cert_path(self) -> Path:
        """Issuing (intermediate) certificate (PEM)."""
        return self._ca_dir("issuing") / "cert.pem"

    @property
    def issuing_key_path(self) -> Path:
        """Issuing private key (PEM, unencrypted: test fixture)."""
        return self._ca_dir("issuing") / "key.pem"

    @property
    def chain_path(self) -> Path:
        """Issuing + root certificates (PEM)."""
        return self.directory / "chain.pem"

    def index_path(self, which: Which) -> Path:
        """The `openssl ca` database (index.txt) of one CA."""
        return self._ca_dir(which) / "index.txt"

    def crl_path(self, which: Which) -> Path:
        """Published DER CRL of one CA (the file the CDP URL serves)."""
        return self.published_dir / f"{self.slug}-{which}.crl"

    def crl_pem_path(self, which: Which) -> Path:
        """Latest CRL of one CA in PEM (as `openssl ca -gencrl` wrote it)."""
        return self._ca_dir(which) / "crl.pem"

    def crl_url(self, which: Which) -> str:
        """CRL distribution point URL written into certificates issued by `which`."""
        return f"{self.crl_base_url}/{self.slug}-{which}.crl"

    # ------------------------------------------------------------------ certs
    @property
    def root_pem(self) -> bytes:
        """Root certificate (PEM)."""
        return self.root_cert_path.read_bytes()

    @property
    def issuing_pem(self) -> bytes:
        """Issuing certificate (PEM)."""
        return self.issuing_cert_path.read_bytes()

    @property
    def chain_pem(self) -> bytes:
        """Issuing + root (PEM), leaf-to-root order."""
        return self.issuing_pem + self.root_pem

    @property
    def root_subject(self) -> str:
        """Root subject as an `-subj` string."""
        return _subj(("C", self.country), ("O", self.name), ("CN", f"{self.name} Root"))

    @property
    def issuing_subject(self) -> str:
        """Issuing CA subject as an `-subj` string."""
        return _subj(("C", self.country), ("O", self.name), ("CN", f"{self.name} Issuing CA"))

    # ------------------------------------------------------------------ building
    def _run(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """openssl with this CA's config."""
        return openssl_run(args, config=self.config_path, input=input)

    def _tmp(self, stem: str, suffix: str) -> Path:
        """A fresh file name under work/ (kept for post-mortem debugging)."""
        with self._lock:
            self._counter += 1
            return self.work_dir / f"{self._counter:04d}-{stem}{suffix}"

    def _genkey(self, path: Path) -> None:
        """Generate a CA key of the configured type."""
        if self.key_type == "ec":
            algo = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-pkeyopt", "ec_param_enc:named_curve"]
        else:
            algo = ["-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{self.rsa_bits}"]
        self._run("genpkey", *algo, "-out", str(path))
        path.chmod(0o600)

    def _build(self, root_days: int, issuing_days: int) -> None:
        """Make the root (self-signed via `ca -selfsign`) and the issuing CA (signed by root)."""
        self._genkey(self.root_key_path)
        self._genkey(self.issuing_key_path)
        root_csr = self.work_dir / "root.csr"
        self._run("req", "-new", "-utf8", "-config", str(self.config_path), "-key", str(self.root_key_path),
                  "-subj", self.root_subject, "-out", str(root_csr))
        # `ca -selfsign` (rather than `req -x509`) puts the root into its own index.txt and
        # gives it a random serial like every other certificate here.
        self._run("ca", "-batch", "-notext", "-utf8", "-config", str(self.config_path), "-name", "root_ca",
                  "-selfsign", "-keyfile", str(self.root_key_path), "-rand_serial", "-preserveDN",
                  "-extensions", "v3_root", "-days", str(root_days), "-in", str(root_csr),
                  "-out", str(self.root_cert_path))
        issuing_csr = self.work_dir / "issuing.csr"
        self._run("req", "-new", "-utf8", "-config", str(self.config_path), "-key", str(self.issuing_key_path),
                  "-subj", self.issuing_subject, "-out", str(issuing_csr))
        self._run("ca", "-batch", "-notext", "-utf8", "-config", str(self.config_path), "-name", "root_ca",
                  "-rand_serial", "-preserveDN", "-extensions", "v3_issuing", "-days", str(issuing_days),
                  "-in", str(issuing_csr), "-out", str(self.issuing_cert_path))
        self.chain_path.write_bytes(self.chain_pem)
        # DER copies next to the CRLs, for tests that want to fetch the CA certs over HTTP.
        for which in ("root", "issuing"):
            pem_path = self.root_cert_path if which == "root" else self.issuing_cert_path
            self._run("x509", "-in", str(pem_path), "-outform", "DER",
                      "-out", str(self.published_dir / f"{self.slug}-{which}.cer"))

    def _config(self) -> str:
        """The openssl.cnf text: two CA sections, a permissive policy, the extension profiles."""
        def ca_section(which: str, extensions: str) -> str:
            d = self._ca_dir(which)
            return f"""
[ {which}_ca ]
dir               = {d}
database          = {d}/index.txt
new_certs_dir     = {d}/certs
certificate       = {d}/cert.pem
private_key       = {d}/key.pem
serial            = {d}/serial
crlnumber         = {d}/crlnumber
crl               = {d}/crl.pem
default_md        = sha256
default_days      = 365
default_crl_days  = {self.crl_days}
policy            = policy_anything
# keep the requester's DN as sent (order, extra RDNs, UTF8String CN such as 李四)
preserve          = yes
utf8              = yes
email_in_dn       = yes
unique_subject    = no
# never copy extensions from a CSR: the profile alone decides what a certificate says
copy_extensions   = none
x509_extensions   = {extensions}
crl_extensions    = crl_ext
"""
        return f"""# Written by tests/opensslca.py for the third-party test CA "{self.name}".
[ ca ]
default_ca = issuing_ca
{ca_section("root", "v3_issuing")}
{ca_section("issuing", "v3_client")}
[ policy_anything ]
countryName            = optional
stateOrProvinceName    = optional
localityName           = optional
organizationName       = optional
organizationalUnitName = optional
commonName             = supplied
emailAddress           = optional

[ req ]
distinguished_name = req_dn
utf8               = yes
string_mask        = utf8only
prompt             = no

[ req_dn ]
CN = unused (every req call passes -subj)

[ v3_root ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ v3_issuing ]
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
crlDistributionPoints  = URI:{self.crl_url("root")}

{self._client_section(EKU_DEFAULT)}
[ crl_ext ]
authorityKeyIdentifier = keyid:always
"""

    def _client_section(self, eku: str | None) -> str:
        """The end-entity extension section, with the EKU given (None: no EKU extension)."""
        lines = ["[ v3_client ]",
                 "keyUsage               = critical, digitalSignature, nonRepudiation",
                 "subjectKeyIdentifier   = hash",
                 "authorityKeyIdentifier = keyid:always",
                 f"crlDistributionPoints  = URI:{self.crl_url('issuing')}"]
        if eku is not None:
            lines.append(f"extendedKeyUsage       = {eku}")
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ issuing
    def issue(self, csr_pem: bytes, *, eku: str | None = EKU_DEFAULT, days: int = 365,
              not_before: datetime | None = None, not_after: datetime | None = None) -> bytes:
        """Sign a client CSR (PEM or DER) with the issuing CA; returns the certificate PEM."""
        inform = "PEM" if csr_pem.lstrip().startswith(b"-----") else "DER"
        csr = self._tmp("client", ".csr")
        csr.write_bytes(csr_pem)
        # A per-call extfile, since the EKU varies per certificate (and -extfile replaces
        # x509_extensions from the config rather than adding to it).
        extfile = self._tmp("client-ext", ".cnf")
        extfile.write_text(self._client_section(eku), encoding="utf-8")
        out = self._tmp("client", ".pem")
        args = ["ca", "-batch", "-notext", "-utf8", "-config", str(self.config_path), "-name", "issuing_ca",
                "-rand_serial", "-preserveDN", "-extfile", str(extfile), "-extensions", "v3_client",
                "-inform", inform, "-in", str(csr), "-out", str(out)]
        if not_before is not None:
            args += ["-startdate", _asn1_time(not_before)]
        if not_after is not None:
            args += ["-enddate", _asn1_time(not_after)]
        else:
            args += ["-days", str(days)]
        with self._lock:
            self._run(*args)
        return out.read_bytes()

    # ------------------------------------------------------------------ status
    def _which_ca(self, cert: x509.Certificate) -> Which:
        """Which CA's database holds the certificate (by issuer name)."""
        candidates: tuple[tuple[Which, bytes], ...] = (("issuing", self.issuing_pem), ("root", self.root_pem))
        for which, pem in candidates:
            ca_cert = _load_cert(pem)
            # Name and key identifier both: two fixture CAs may well share a name.
            if cert.issuer == ca_cert.subject and _aki(cert) in (None, _ski(ca_cert)):
                return which
        raise ValueError(f"certificate issued by {cert.issuer.rfc4514_string()} is not from {self.name}")

    def _revoke(self, cert_pem: bytes, reason_args: Sequence[str]) -> None:
        """`openssl ca -revoke` in the database of whichever CA issued the certificate."""
        cert = _load_cert(cert_pem)
        which = self._which_ca(cert)
        path = self._tmp("revoke", ".pem")
        path.write_bytes(cert.public_bytes(Encoding.PEM))
        with self._lock:
            if self.status(cert_pem) == "hold":
                # openssl refuses to revoke an entry that is already R (on hold), so a
                # hold is lifted first and the final reason written fresh.
                self.release(cert_pem)
            self._run("ca", "-batch", "-config", str(self.config_path), "-name", f"{which}_ca",
                      "-revoke", str(path), *reason_args)

    def revoke(self, cert_pem: bytes, reason: str = "keyCompromise") -> None:
        """Revoke a client certificate (issuing CRL) or the issuing CA itself (root CRL)."""
        if reason not in REASONS:
            raise ValueError(f"reason must be one of {REASONS}, not {reason!r}")
        self._revoke(cert_pem, ["-crl_reason", reason])

    def hold(self, cert_pem: bytes) -> None:
        """Suspend (挂失): revoke with reason certificateHold (no holdInstructionCode extension)."""
        # -crl_reason certificateHold rather than -crl_hold: the latter also writes the
        # holdInstructionCode entry extension, which RFC 5280 deprecated.
        self._revoke(cert_pem, ["-crl_reason", "certificateHold"])

    def _entries(self, which: Which) -> list[list[str]]:
        """index.txt rows, tab-split (status, expiry, revocation[,reason], serial, file, subject)."""
        text = self.index_path(which).read_text(encoding="utf-8", errors="surrogateescape")
        return [line.split("\t") for line in text.splitlines() if line]

    def _write_entries(self, which: Which, rows: list[list[str]]) -> None:
        """Rewrite index.txt atomically (openssl keeps its own .old copy; we do the same)."""
        path = self.index_path(which)
        text = "".join("\t".join(row) + "\n" for row in rows)
        tmp = path.with_name("index.txt.udun-tmp")
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")
        path.with_name("index.txt.old").write_bytes(path.read_bytes())
        os.replace(tmp, path)

    def _find(self, cert_pem: bytes) -> tuple[Which, list[list[str]], int]:
        """The CA, its rows and the row index of a certificate in its database."""
        cert = _load_cert(cert_pem)
        which = self._which_ca(cert)
        rows = self._entries(which)
        for i, row in enumerate(rows):
            if len(row) >= 4 and int(row[3], 16) == cert.serial_number:
                return which, rows, i
        raise LookupError(f"serial {cert.serial_number:X} is not in the {which} CA database")

    def status(self, cert_pem: bytes) -> Literal["valid", "hold", "revoked", "expired", "unknown"]:
        """The certificate's state in the CA database."""
        try:
            _, rows, i = self._find(cert_pem)
        except LookupError:
            return "unknown"
        row = rows[i]
        if row[0] == "V":
            return "valid"
        if row[0] == "E":
            return "expired"
        reason = row[2].split(",")[1] if "," in row[2] else ""
        return "hold" if reason in ("certificateHold", "holdInstruction") else "revoked"

    def release(self, cert_pem: bytes, *, force: bool = False) -> None:
        """Release (解挂) a held certificate: its index.txt row goes back to V, so it leaves the CRL."""
        with self._lock:
            which, rows, i = self._find(cert_pem)
            row = rows[i]
            state = self.status(cert_pem)
            if state == "valid":
                return
            if state != "hold" and not force:
                raise ValueError(f"serial {row[3]} is {state}, not on hold (pass force=True to un-revoke)")
            # `openssl ca` has no "unrevoke"; a V row is status V and an empty revocation field.
            rows[i] = ["V", row[1], "", *row[3:]]
            self._write_entries(which, rows)

    # ------------------------------------------------------------------ CRLs
    def crl(self, which: Which = "issuing", *, days: int | None = None, hours: int | None = None,
            last_update: datetime | None = None, next_update: datetime | None = None) -> bytes:
        """Generate a fresh CRL (DER) with `openssl ca -gencrl`, publish it, return it."""
        if which not in ("root", "issuing"):
            raise ValueError(f"which must be 'root' or 'issuing', not {which!r}")
        args = ["ca", "-batch", "-config", str(self.config_path), "-name", f"{which}_ca", "-gencrl",
                "-out", str(self.crl_pem_path(which))]
        if hours is not None:
            args += ["-crlhours", str(hours)]
        else:
            args += ["-crldays", str(self.crl_days if days is None else days)]
        if last_update is not None:
            args += ["-crl_lastupdate", _asn1_time(last_update)]
        if next_update is not None:
            args += ["-crl_nextupdate", _asn1_time(next_update)]
        with self._lock:
            self._run(*args)
            # Write to a temp name and rename: the CRL server may be reading the old file.
            tmp = self.published_dir / f".{self.slug}-{which}.crl.tmp"
            self._run("crl", "-in", str(self.crl_pem_path(which)), "-outform", "DER", "-out", str(tmp))
            os.replace(tmp, self.crl_path(which))
            return self.crl_path(which).read_bytes()

    def publish_crls(self) -> None:
        """Regenerate and publish both CRLs."""
        self.crl("root")
        self.crl("issuing")


# ---------------------------------------------------------------------- CRL server
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static files from the server's current directory; no logging to stderr."""

    server: _CrlHttpServer
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".crl": "application/pkix-crl", ".cer": "application/pkix-cert",
                      ".pem": "application/x-pem-file"}

    def __init__(self, request: Any, client_address: Any, server: _CrlHttpServer) -> None:
        # One handler per request, so the directory is read per request: it may be set
        # after the port was bound (and changed between requests).
        directory = server.owner.directory
        super().__init__(request, client_address, server,
                         directory=str(directory) if directory is not None else os.devnull)

    def do_GET(self) -> None:
        """Serve a file, or 404 when no directory is set (never the process's cwd)."""
        self.server.owner.requests.append(self.path)
        if self.server.owner.directory is None or self.server.owner.fail_status is not None:
            self.send_error(self.server.owner.fail_status or 404)
            return
        super().do_GET()

    def list_directory(self, path: Any) -> None:
        """No directory listings: a CRL endpoint serves files only."""
        self.send_error(404)
        return None

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `CrlServer.requests` instead of a log."""


class _CrlHttpServer(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its CrlServer."""

    daemon_threads = True
    owner: CrlServer


class CrlServer:
    """HTTP server on 127.0.0.1 (port bound at construction) serving a directory of CRLs."""

    def __init__(self, directory: Path | None = None, *, port: int = 0) -> None:
        self.directory: Path | None = Path(directory) if directory is not None else None
        # Every path requested, in order: lets a test assert that a verifier fetched the CRL.
        self.requests: list[str] = []
        # Set to e.g. 503 to simulate a CRL endpoint that is down.
        self.fail_status: int | None = None
        # Binding here (not in start) fixes the port before any certificate names it.
        self._httpd = _CrlHttpServer(("127.0.0.1", port), _QuietHandler)
        self._httpd.owner = self
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def serve(self, target: OpenSslCa | Path) -> None:
        """Serve a CA's published/ folder (or any directory) from now on."""
        self.directory = target.published_dir if isinstance(target, OpenSslCa) else Path(target)

    def start(self) -> CrlServer:
        """Start serving in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"crl-server-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> CrlServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


@contextlib.contextmanager
def serve_crls(target: OpenSslCa | Path) -> Iterator[str]:
    """Serve a CA's published/ folder (on the port its CDP URLs name) or a directory; yields the base URL."""
    port = 0
    if isinstance(target, OpenSslCa):
        parsed = urllib.parse.urlsplit(target.crl_base_url)
        if parsed.hostname not in ("127.0.0.1", "localhost") or parsed.port is None:
            raise ValueError(f"crl_base_url {target.crl_base_url} is not http://127.0.0.1:PORT")
        port = parsed.port
    with CrlServer(port=port) as server:
        server.serve(target)
        yield server.url

