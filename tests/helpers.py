"""Test helpers: sample payments, a software key for rogue CAs, running `udun`."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from keystore.software import SoftwareKey  # noqa: F401  (tests import it from here)
from pkicore.algorithms import KeyType, SigScheme

PIN = "test-pin-4711"
SO_PIN = "test-so-pin-0815"
USERS: dict[str, tuple[KeyType, SigScheme]] = {
    "user-ec": (KeyType.EC_P256, SigScheme.ECDSA_SHA256),
    "user-rsa2048": (KeyType.RSA_2048, SigScheme.RSA_PKCS1_SHA256),
    "user-rsa3072": (KeyType.RSA_3072, SigScheme.RSA_PSS_SHA256),
}

from udun.demo import SAMPLE

CUSTOMER = "C-TEST"      # the session CA's customer with SAMPLE's payer account (conftest)


@dataclass(frozen=True)
class Enrolled:
    label: str
    key_type: KeyType
    scheme: SigScheme
    csr_der: bytes
    cert_der: bytes
    serial: str


def sample_tx(**changes: Any):  # type: ignore[no-untyped-def]
    """The DESIGN.md payment with a fresh tx_id (a tx_id is accepted once per signer)."""
    from pkicore import tx

    data = json.loads(json.dumps(SAMPLE))
    data["tx_id"] = f"TX-{uuid.uuid4().hex[:20]}"
    data.update(changes)
    return tx.validate(data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def home_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a process, with its own database when its UDUN_HOME is not the session's.

    On SQLite the database lives in the home, so a new home is a new database by itself; in
    a PostgreSQL run (conftest) that home gets a database of its own on the run's server,
    unless ``env`` names a database of its own choosing."""
    admin = os.environ.get("UDUN_TEST_PG_ADMIN_URL")
    home = env.get("UDUN_HOME")
    if not admin or not home or home == os.environ.get("UDUN_TEST_SESSION_HOME"):
        return env
    if env.get("UDUN_DATABASE_URL") not in (None, os.environ.get("UDUN_DATABASE_URL")):
        return env
    import pgserver

    return {**env, "UDUN_DATABASE_URL": pgserver.database_url(admin, home)}


@contextlib.contextmanager
def running_server(home: Path, workers: int = 2, extra_env: dict[str, str] | None = None,
                   command: str = "serve") -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`udun serve` (gunicorn; or ``command``, e.g. serve-ocsp) on a free loopback port;
    (base URL, process). It gets no CA PIN: the bank-facing server needs only the online
    token's (secrets/online.pin)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "UDUN_CA_PIN"}
    env.update({"UDUN_HOME": str(home), **(extra_env or {})})
    env = home_env(env)
    proc = subprocess.Popen([sys.executable, "-m", "udun.cli", command, "--port", str(port), "--workers",
                             str(workers)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {proc.stderr.read().decode(errors='replace') if proc.stderr else ''}")
                time.sleep(0.2)
        yield base, proc
    finally:
        stop_process(proc)


def verify_at_once_on_two_servers(home: Path, bank_key: str, payments: list[bytes]) -> list[dict[str, Any]]:
    """POST every payment to /api/v1/verify at the same time, alternating between two `udun
    serve` processes on ``home`` (one database): their answers, in order. An answer that
    says retry later (INDETERMINATE TRY_LATER: no fresh status yet, seen once from a server
    just started) is sent again afterwards, as a bank would, up to three times: it reserved
    nothing, so the story's outcome is the same."""
    from concurrent.futures import ThreadPoolExecutor

    def post(args: tuple[str, bytes]) -> dict[str, Any]:
        base, cms = args
        req = urllib.request.Request(f"{base}/api/v1/verify", data=cms, method="POST", headers={
            "Content-Type": "application/pkcs7-mime", "Authorization": f"Bearer {bank_key}"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read())  # type: ignore[no-any-return]
        except urllib.error.HTTPError as e:          # a problem+json answer: the test sees it
            return {"http_status": e.code, **json.loads(e.read() or b"{}")}

    with running_server(home, workers=2) as (one, _), running_server(home, workers=2) as (two, _):
        with ThreadPoolExecutor(len(payments)) as pool:
            answers = list(pool.map(post, [(one if i % 2 else two, cms) for i, cms in enumerate(payments)]))
        for _ in range(3):
            for i, answer in enumerate(answers):
                if answer.get("sub_indication") == "TRY_LATER":
                    time.sleep(0.5)
                    answers[i] = post((one, payments[i]))
        return answers


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (gunicorn's graceful stop), then SIGKILL to the whole group after 30 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def now() -> datetime:
    return datetime.now(UTC)


def make_root(key: SoftwareKey, cn: str = "Rogue Root", days: int = 3650) -> bytes:
    """A self-signed CA certificate made with our builders and a software key."""
    from ca import profiles
    from pkicore.algorithms import default_scheme
    from certkit import build_tbs, sign_tbs
    from pkicore.x509build import key_identifier, parse_name

    name = parse_name(f"CN={cn},O=rogue")
    ski = key_identifier(key.public_key_der)
    scheme = default_scheme(key.key_type)
    t = now()
    tbs = build_tbs(serial=0x1234567890ABCDEF, issuer=name, subject=name, public_key_der=key.public_key_der,
                    not_before=t - timedelta(days=1), not_after=t + timedelta(days=days), scheme=scheme,
                    extensions=profiles.root_extensions(ski))
    return sign_tbs(key, tbs, scheme)


def issue_with(issuer_key: Any, issuer_cert_der: bytes, public_key_der: bytes, *,
               extensions: list[dict[str, Any]] | None = None, days: int = 30,
               not_before: datetime | None = None, cn: str = "Someone") -> bytes:
    """A client certificate signed by any RawSigner (our CA key or a rogue one)."""
    from asn1crypto import x509

    from ca import profiles
    from ca.authority import new_serial
    from pkicore.algorithms import default_scheme
    from config.settings import load_settings
    from certkit import build_tbs, sign_tbs
    from pkicore.x509build import key_identifier, parse_name

    issuer = x509.Certificate.load(issuer_cert_der)
    settings = load_settings()
    if extensions is None:
        extensions = profiles.client_extensions(settings, profiles.client_profile(settings),
                                                key_identifier(public_key_der), issuer.key_identifier)
    scheme = default_scheme(issuer_key.key_type)
    nb = not_before or now() - timedelta(minutes=1)
    tbs = build_tbs(serial=new_serial(), issuer=issuer.subject, subject=parse_name(f"CN={cn},O=udun tests"),
                    public_key_der=public_key_der, not_before=nb, not_after=nb + timedelta(days=days),
                    scheme=scheme, extensions=extensions)
    return sign_tbs(issuer_key, tbs, scheme)


def udun(*args: str, env: dict[str, str] | None = None, input: bytes | None = None,
         cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """Run the real `udun` command in a subprocess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "udun.cli", *args], env=home_env(full_env), input=input,
                          capture_output=True, cwd=cwd, timeout=timeout, check=False)


def software_csr(subject: str) -> bytes:
    """A PEM CSR for CN=subject,O=udun tests,C=CN from a new software P-256 key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject), x509.NameAttribute(
        NameOID.ORGANIZATION_NAME, "udun tests"), x509.NameAttribute(NameOID.COUNTRY_NAME, "CN")])
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM)


class CliHome:
    """A UDUN_HOME driven through the real CLI, with its user and SO PINs in the environment
    (never the CA PIN: `ca init` generates it into secrets/ca.pin)."""

    def __init__(self, path: Path, pin: str, so_pin: str) -> None:
        self.path = path
        self.env = {"UDUN_HOME": str(path), "UDUN_PIN": pin, "UDUN_SO_PIN": so_pin, "UDUN_CA_PIN": "",
                    "UDUN_BASE_URL": "http://127.0.0.1:8080"}

    def run(self, *args: str, ok: bool = True, **env: str) -> subprocess.CompletedProcess[bytes]:
        proc = udun(*args, env={**self.env, **env}, cwd=self.path)
        if ok:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc


def openssl(*args: str, input: bytes | None = None, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(["openssl", *args], input=input, capture_output=True, env=full_env, cwd=cwd,
                          timeout=60, check=False)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


LINTER = str(Path(sys.executable).parent / "lint_pkix_cert")


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    """pkilint's RFC 5280 certificate linter at WARNING and above (exit code = findings)."""
    return subprocess.run([LINTER, "lint", "-s", "WARNING", str(path)], capture_output=True, text=True,
                          timeout=120, check=False)


def bank_key(store: Any, clock: Any, bank: str = "testbank", scopes: tuple[str, ...] | None = None) -> str:
    """A new API key of ``bank`` (registered on first use), with every scope unless named:
    what a test's bank sends as ``Authorization: Bearer ...``."""
    from ca.banks import SCOPES, Banks
    from pkicore.errors import PkiError

    banks = Banks(store, clock)
    try:
        banks.bank(bank)
    except PkiError:
        banks.add(bank, f"{bank} (tests)", actor="pytest")
    return banks.issue_key(bank, scopes or tuple(SCOPES), actor="pytest").text


def home_bank_key(home: Path, bank: str = "testbank", scopes: tuple[str, ...] | None = None) -> str:
    """``bank_key`` in another UDUN_HOME's database (a server a test started on it)."""
    from ca.directory import CaDirectory
    from config.settings import load_settings

    env = home_env({**os.environ, "UDUN_HOME": str(home)})
    ca = CaDirectory.open(load_settings({k: v for k, v in env.items() if k.startswith("UDUN_")}),
                          migrate_schema=False)
    try:
        return bank_key(ca.store, ca.clock, bank, scopes)
    finally:
        ca.store.raw.close()
        ca.store.engine.dispose()
