"""Issue 11 point 3: an HSM module or token that cannot be reached is a 503 with a stable
code (or OCSP's own tryLater), never a hang or a 500, and udun recovers by itself.

"Token gone" is the online token's SoftHSM directory moved out of $UDUN_HOME/tokens
(SoftHSM re-reads the directory), "module gone" a UDUN_PKCS11_MODULE that does not exist.
Real `udun serve` processes on a home made through the CLI; in-process tests drive
keystore.token's retry-once, backoff and lock bound with the session's real SoftHSM.

Bounds (hsm-config/README.md): an answer in well under LOCK_SECONDS while the token is
away; once it is back, every worker signs again on its first request after at most
REINIT_MAX_SECONDS (the backoff window), so within RECOVERY_SECONDS here.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import cms, core, x509
from asn1crypto import ocsp as asn1ocsp
from asn1crypto import tsp as asn1tsp

from helpers import SAMPLE, CliHome, free_port, home_env, stop_process, udun
from tokencopy import token_directory

PIN = "hsm-user-pin-7243"
SO_PIN = "hsm-so-pin-55160"
SCRIPT = Path(__file__).resolve().parent.parent / "hsm-config" / "copy-online-token.sh"
ANSWER_SECONDS = 5.0           # a 503 / tryLater comes at least this fast (never a hang)
RECOVERY_SECONDS = 5.0 + 7.0   # REINIT_MAX_SECONDS, and slack for a loaded 2-core machine
START_SECONDS = 60.0


class Home(CliHome):
    """A CA home made through the CLI: one customer (token dora) with a certificate and
    several signed payments (each is accepted once: every test uses its own)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, PIN, SO_PIN)
        self.bank_key = ""                 # the bank's API key, made through the CLI

    def payment(self, name: str) -> bytes:
        return (self.path / f"{name}.p7s").read_bytes()

    def serials(self) -> dict[str, str]:
        """Label -> serial of this home's tokens, as `udun token list` shows them."""
        out = self.run("token", "list").stdout.decode()
        return dict(re.findall(r"^(\S+)\s+serial (\S+)", out, re.M))

    def token_dir(self, label: str = "udun-online") -> Path:
        """The token's SoftHSM directory (found as hsm-config/copy-online-token.sh does)."""
        return token_directory(self.path, label)

    def database_url(self) -> str:
        """This home's database, handed explicitly to a node of its own (PostgreSQL runs:
        the database helpers.home_env gives this home; SQLite: its file)."""
        return home_env({"UDUN_HOME": str(self.path)}).get("UDUN_DATABASE_URL") or f"sqlite:///{self.path / 'udun.db'}"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    h = Home(tmp_path_factory.mktemp("hsm"))
    h.run("ca", "init")
    h.run("token", "init", "--label", "dora")
    h.run("token", "keygen", "--label", "dora")
    h.run("token", "csr", "--label", "dora", "--subject", "CN=Dora,O=Example Bank,C=CN", "-o", "req.pem")
    h.run("customer", "add", "C0001", "--name", "Dora", "--account", SAMPLE["payer"]["account"])
    h.run("ca", "issue", "req.pem", "-o", "cert.pem", "--customer", "C0001")
    h.run("ca", "chain", "-o", "chain.pem")
    h.run("token", "import", "--label", "dora", "cert.pem")
    h.run("bank", "add", "hsm-bank")
    h.bank_key = h.run("bank", "key", "add", "hsm-bank", "--scope", "verify").stdout.decode().strip()
    for name in ("away-start", "before", "during", "node"):
        (h.path / f"{name}.json").write_text(json.dumps({**SAMPLE, "tx_id": f"hsm-{name}-0001"}, ensure_ascii=False),
                                             encoding="utf-8")
        h.run("sign", "--label", "dora", f"{name}.json", "-o", f"{name}.p7s", "--yes")
    return h


@contextlib.contextmanager
def parked(src: Path) -> Iterator[Path]:
    """A token's directory out of its tokens/ into tokens-away/ beside it (and back at the
    end, whatever happens)."""
    away = src.parent.parent / "tokens-away" / src.name
    away.parent.mkdir(mode=0o700, exist_ok=True)
    shutil.move(str(src), str(away))
    try:
        yield away
    finally:
        if away.exists():
            shutil.move(str(away), str(src))


def token_away(home: Home) -> contextlib.AbstractContextManager[Path]:
    """The online token's directory out of $UDUN_HOME/tokens."""
    return parked(home.token_dir())


def bring_back(away: Path, home: Home) -> float:
    """Move the token back now; the monotonic time it happened."""
    shutil.move(str(away), str(home.path / "tokens" / away.name))
    return time.monotonic()


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[bytes]
    stderr: Path
    bank_key: str

    def errors(self) -> str:
        return self.stderr.read_text(errors="replace")


@contextlib.contextmanager
def serving(home: Home, workers: int = 2, extra_env: dict[str, str] | None = None,
            home_path: Path | None = None) -> Iterator[Server]:
    """`udun serve` (no CA PIN), started once it answers at all (/healthz is liveness, but
    any HTTP answer will do); its stderr in a file, read by the tests."""
    path = home_path or home.path
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "UDUN_CA_PIN"}
    env.update({"UDUN_HOME": str(path), **(extra_env or {})})
    err_path = path / f"serve-{port}.err"
    with open(err_path, "wb") as err:       # a file, not a pipe nobody reads while it runs
        proc = subprocess.Popen([sys.executable, "-m", "udun.cli", "serve", "--port", str(port), "--workers",
                                 str(workers)], env=home_env(env), stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", proc, err_path, home.bank_key)
    deadline = time.monotonic() + START_SECONDS
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{server.base}/healthz", timeout=5):
                    break
            except urllib.error.HTTPError:
                break                       # an answer: the server is up
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {server.errors()[-3000:]}")
                time.sleep(0.2)
        yield server
    finally:
        stop_process(proc)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> dict:  # type: ignore[type-arg]
        return dict(json.loads(self.body))


def request(url: str, data: bytes | None = None, content_type: str | None = None,
            headers: dict[str, str] | None = None) -> Reply:
    req = urllib.request.Request(url, data=data, headers={**({"Content-Type": content_type} if content_type else {}),
                                                          **(headers or {})})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return Reply(resp.status, dict(resp.headers), resp.read(), time.monotonic() - started)
    except urllib.error.HTTPError as e:
        return Reply(e.code, dict(e.headers), e.read(), time.monotonic() - started)


# --- what a client sends and reads -------------------------------------------------------

def _certs(home: Home) -> tuple[x509.Certificate, x509.Certificate]:
    from asn1crypto import pem

    cert = x509.Certificate.load(pem.unarmor((home.path / "cert.pem").read_bytes())[2])
    issuing = next(x509.Certificate.load(der) for _, _, der in pem.unarmor((home.path / "chain.pem").read_bytes(),
                                                                           multiple=True))
    return cert, issuing


def ocsp_request(home: Home, nonce: bool) -> bytes:
    from pkicore.ocsp import build_request

    cert, issuing = _certs(home)
    return build_request(cert, issuing, nonce=os.urandom(16) if nonce else None)


def ocsp(server: Server, home: Home, nonce: bool) -> tuple[Reply, str, str | None]:
    """(reply, responseStatus, the certificate's status when successful)."""
    r = request(f"{server.base}/ocsp", ocsp_request(home, nonce), "application/ocsp-request")
    resp = asn1ocsp.OCSPResponse.load(r.body)
    status = resp["response_status"].native
    cert_status = None
    if status == "successful":
        cert_status = resp["response_bytes"]["response"].parsed["tbs_response_data"]["responses"][0]["cert_status"].name
    return r, status, cert_status


class TimeStampResp(core.Sequence):
    """RFC 3161 §2.4.2 (asn1crypto's requires the token, which a rejection has not)."""

    _fields = [("status", asn1tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]


def tsa(server: Server) -> tuple[Reply, str, str]:
    """(reply, PKIStatus, statusString)."""
    from pkicore.tsp import build_request

    query = build_request(hashlib.sha256(os.urandom(16)).digest(), nonce=int.from_bytes(os.urandom(8), "big"))
    r = request(f"{server.base}/tsa", query, "application/timestamp-query")
    status = TimeStampResp.load(r.body)["status"]
    text = " ".join(status["status_string"].native or [])
    return r, status["status"].native, text


def verify(server: Server, cms: bytes) -> Reply:
    return request(f"{server.base}/api/v1/verify", cms, "application/pkcs7-mime",
                   {"Authorization": f"Bearer {server.bank_key}"})


def assert_unavailable_tsa(server: Server) -> None:
    r, status, text = tsa(server)
    assert r.status == 503 and status == "rejection", (r.status, status, text)
    assert text.startswith("unavailable:") and int(r.headers["Retry-After"]) >= 1, (text, r.headers)
    assert r.headers["Content-Type"] == "application/timestamp-reply"
    assert r.seconds < ANSWER_SECONDS, r.seconds


def assert_try_later_ocsp(server: Server, home: Home) -> None:
    # RFC 6960 §2.3 tryLater, an unsigned OCSPResponse with HTTP 200 (Appendix A.1; OpenSSL
    # drops the body of any other status).
    r, status, _ = ocsp(server, home, nonce=True)
    assert r.status == 200 and status == "try_later", (r.status, status)
    assert r.seconds < ANSWER_SECONDS, r.seconds


def until_signing(server: Server, since: float) -> float:
    """Poll the TSA until it grants; the seconds it took after ``since``."""
    while True:
        r, status, text = tsa(server)
        if status == "granted":
            assert r.status == 200
            return time.monotonic() - since
        assert r.status == 503 and text.startswith("unavailable:"), (r.status, status, text)
        assert time.monotonic() - since < RECOVERY_SECONDS, "the server did not recover from the token's return"
        time.sleep(0.25)


def all_workers_sign(server: Server, home: Home, since: float) -> None:
    """Once a whole backoff window has passed since the token came back, every worker signs."""
    from keystore.token import REINIT_MAX_SECONDS

    time.sleep(max(0.0, since + REINIT_MAX_SECONDS + 0.5 - time.monotonic()))
    for _ in range(6):
        r, status, text = tsa(server)
        assert (r.status, status) == (200, "granted"), (r.status, status, text)
        _, ostatus, cert_status = ocsp(server, home, nonce=True)
        assert (ostatus, cert_status) == ("successful", "good")


def no_traceback(server: Server) -> None:
    assert "Traceback" not in server.errors(), server.errors()[-3000:]


# --- real servers --------------------------------------------------------------------------

def test_serve_starts_without_the_online_token_and_recovers(home: Home) -> None:
    """(a) Started with the online token's directory gone: it starts, answers 503 / tryLater
    at once, and signs again within the backoff once the directory is back."""
    with token_away(home) as away, serving(home, workers=2) as server:
        assert "cannot be used now" in server.errors(), server.errors()
        health = request(f"{server.base}/readyz")
        assert health.status == 503, health.body
        for _ in range(3):                        # each worker, more or less: all the same
            assert_unavailable_tsa(server)
            assert_try_later_ocsp(server, home)
        # The signer's status needs a signed OCSP answer nobody has made yet: no status,
        # so no evidence (EN 319 102-1 TRY_LATER), as a report, not an error.
        r = verify(server, home.payment("away-start"))
        assert r.status == 200 and r.json()["status"] == "INDETERMINATE", r.body
        assert r.json()["sub_indication"] == "TRY_LATER" and not r.json().get("evidence_id"), r.body

        back = bring_back(away, home)
        took = until_signing(server, back)
        all_workers_sign(server, home, back)
        r = verify(server, home.payment("away-start"))
        assert r.status == 200 and r.json()["status"] == "TOTAL_PASSED" and r.json()["evidence_id"], r.body
        assert request(f"{server.base}/readyz").status == 200
        no_traceback(server)
    print(f"recovered {took:.1f} s after the token came back")


def test_token_gone_while_serving(home: Home) -> None:
    """The token goes away under a running server (one worker, so its caches are the ones
    asked): pre-signed OCSP answers are still served, what needs signing is 503/tryLater,
    verify with evidence is a 503 (no evidence claimed); all of it back within the bound."""
    with serving(home, workers=1) as server:
        r = verify(server, home.payment("before"))
        assert r.status == 200 and r.json()["status"] == "TOTAL_PASSED", r.body
        cached = request(f"{server.base}/ocsp", ocsp_request(home, nonce=False), "application/ocsp-request")
        with token_away(home) as away:
            assert_unavailable_tsa(server)
            assert_try_later_ocsp(server, home)
            again = request(f"{server.base}/ocsp", ocsp_request(home, nonce=False), "application/ocsp-request")
            assert again.status == 200 and again.body == cached.body      # the pre-signed answer
            r = verify(server, home.payment("during"))
            assert r.status == 503 and r.json()["code"] == "unavailable", r.body
            assert r.seconds < ANSWER_SECONDS
            back = bring_back(away, home)
            until_signing(server, back)
        r = verify(server, home.payment("during"))       # nothing was kept: it can be sent again
        assert r.status == 200 and r.json()["status"] == "TOTAL_PASSED", r.body
        no_traceback(server)


def test_missing_module_is_a_clear_503(home: Home) -> None:
    """(b) UDUN_PKCS11_MODULE names a file that does not exist: the server starts, says so
    once, answers 503 / tryLater, and never writes a traceback."""
    missing = str(home.path / "no-such-hsm" / "libvendor-pkcs11.so")
    with serving(home, workers=1, extra_env={"UDUN_PKCS11_MODULE": missing}) as server:
        assert "does not exist" in server.errors() and missing in server.errors(), server.errors()
        for _ in range(3):
            assert_unavailable_tsa(server)
            assert_try_later_ocsp(server, home)
        health = request(f"{server.base}/readyz")        # what an operator reads: the module, by name
        assert health.status == 503 and b"UDUN_PKCS11_MODULE" in health.body and b"unavailable" in health.body
        no_traceback(server)


def test_a_node_with_a_copied_token_found_by_serial(home: Home, tmp_path: Path) -> None:
    """(c) hsm-config/copy-online-token.sh gives a node its own copy (same serial, 0700/0600,
    no CA PIN); the node finds it by UDUN_ONLINE_TOKEN_SERIAL and signs; a wrong serial,
    or the serial of another token, stops `udun serve` with one clear line."""
    node = tmp_path / "node"
    copied = subprocess.run([str(SCRIPT), str(home.path), str(node)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert copied.returncode == 0, copied.stderr
    serial = home.serials()["udun-online"]
    assert f"serial {serial}" in copied.stdout
    token_dir = node / "tokens" / home.token_dir().name
    assert token_dir.is_dir() and not (node / "secrets" / "ca.pin").exists()
    for path in [node, node / "tokens", node / "secrets", *token_dir.rglob("*"), *(node / "secrets").iterdir()]:
        assert path.stat().st_mode & 0o077 == 0, path
    assert (node / "secrets" / "online.pin").read_bytes() == (home.path / "secrets" / "online.pin").read_bytes()

    env = {"UDUN_DATABASE_URL": home.database_url(), "UDUN_ONLINE_TOKEN_SERIAL": serial}
    with serving(home, workers=1, extra_env=env, home_path=node) as server:
        r, status, _ = tsa(server)
        assert (r.status, status) == (200, "granted")
        _, ostatus, cert_status = ocsp(server, home, nonce=True)
        assert (ostatus, cert_status) == ("successful", "good")
        r = verify(server, home.payment("node"))
        assert r.status == 200 and r.json()["status"] == "TOTAL_PASSED", r.body

    node_env = {"UDUN_HOME": str(node), "UDUN_DATABASE_URL": home.database_url(), "UDUN_CA_PIN": ""}
    wrong = udun("serve", "--port", str(free_port()), env={**node_env, "UDUN_ONLINE_TOKEN_SERIAL": "0123456789abcdef"},
                 timeout=60)
    assert wrong.returncode == 2, wrong.stderr
    assert f"token 'udun-online' has serial {serial}, not the configured 0123456789abcdef" in wrong.stderr.decode()
    other = home.serials()["udun-ca"]                      # a serial that names another token
    wrong = udun("serve", "--port", str(free_port()), env={**home.env, "UDUN_ONLINE_TOKEN_SERIAL": other},
                 timeout=60)
    assert wrong.returncode == 2, wrong.stderr
    assert f"the token with serial {other} is labelled 'udun-ca', not 'udun-online'" in wrong.stderr.decode()
    # The script never shares: a home's own token directory is refused.
    again = subprocess.run([str(SCRIPT), str(home.path), str(home.path)], capture_output=True, text=True, timeout=60,
                           check=False)
    assert again.returncode != 0 and "copy, do not share" in again.stderr


# --- in process: the session's real SoftHSM -----------------------------------------------

@pytest.fixture()
def tsa_key(settings, ca):  # type: ignore[no-untyped-def]
    """The session CA's delegated TSA key, opened as a serving process opens it."""
    from keystore.online import online_key

    rec = ca.store.authority("tsa")
    return online_key(settings, rec.key_id)


@contextlib.contextmanager
def session_token_away(settings, key) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """The session home's online token away; on the way out, back and signing again (the
    backoff reset), so later tests find the process as it was."""
    from pkicore.algorithms import SigScheme

    try:
        with parked(token_directory(settings.home, settings.online_token)) as away:
            yield away
    finally:
        deadline = time.monotonic() + RECOVERY_SECONDS
        while True:
            try:
                key.sign_digest(bytes(32), SigScheme.ECDSA_SHA256)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def bring_back_session(away: Path, settings) -> float:  # type: ignore[no-untyped-def]
    shutil.move(str(away), str(settings.home / "tokens" / away.name))
    return time.monotonic()


def test_a_lost_session_is_retried_once_on_a_new_one(settings, tsa_key) -> None:  # type: ignore[no-untyped-def]
    """The session under a key ends at the C level (as when an HSM drops it): the signature
    fails with SessionHandleInvalid, is retried once on a re-opened session, and holds."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    from keystore import token
    from pkicore.algorithms import SigScheme

    digest = hashlib.sha256(b"before").digest()
    tsa_key.sign_digest(digest, SigScheme.ECDSA_SHA256)
    tsa_key._private.session.close()              # behind keystore.token's back: a real dead session
    before = token.reinit_count()
    signature = tsa_key.sign_digest(digest, SigScheme.ECDSA_SHA256)
    assert token.reinit_count() == before + 1
    public = serialization.load_der_public_key(tsa_key.public_key_der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_token_away_is_unavailable_fast_and_reinit_is_rate_limited(settings, tsa_key) -> None:  # type: ignore[no-untyped-def]
    """While the token is away every signature fails fast with UNAVAILABLE, and the library
    is re-initialised at most once a second (a doubling window); back, the same key signs
    within REINIT_MAX_SECONDS, without being opened again by its owner."""
    from keystore import token
    from pkicore.algorithms import SigScheme
    from pkicore.errors import ErrorKind, PkiError

    digest = hashlib.sha256(b"away").digest()
    tsa_key.sign_digest(digest, SigScheme.ECDSA_SHA256)
    with session_token_away(settings, tsa_key) as away:
        before, started = token.reinit_count(), time.monotonic()
        slowest = 0.0
        while time.monotonic() - started < 3.0:
            t = time.monotonic()
            with pytest.raises(PkiError) as err:
                tsa_key.sign_digest(digest, SigScheme.ECDSA_SHA256)
            slowest = max(slowest, time.monotonic() - t)
            assert err.value.kind is ErrorKind.UNAVAILABLE, err.value
            assert "udun-online" in err.value.message and "retry in" in err.value.message, err.value.message
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        reinits = token.reinit_count() - before
        assert 1 <= reinits <= elapsed / token.REINIT_FIRST_SECONDS + 1, (reinits, elapsed)
        assert slowest < 1.5, slowest             # at most the rest of a first 1 s window
        assert token.retry_after() >= 1
        back = bring_back_session(away, settings)
        while True:
            try:
                tsa_key.sign_digest(digest, SigScheme.ECDSA_SHA256)
                break
            except PkiError as e:
                assert e.kind is ErrorKind.UNAVAILABLE
                assert time.monotonic() - back < token.REINIT_MAX_SECONDS + 1.0
                time.sleep(0.05)
    assert token._reinit_window == token.REINIT_FIRST_SECONDS     # the backoff starts over


def test_the_token_lock_wait_is_bounded(tsa_key, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A call stuck inside the module holds the process's token lock; the next caller does
    not queue behind it for ever but gets UNAVAILABLE after LOCK_SECONDS."""
    from keystore import token
    from pkicore.algorithms import SigScheme
    from pkicore.errors import ErrorKind, PkiError

    monkeypatch.setattr(token, "LOCK_SECONDS", 0.3)
    held, release = threading.Event(), threading.Event()

    def stuck() -> None:                          # what a hung C_Sign looks like from outside
        with token._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=stuck)
    holder.start()
    try:
        held.wait(5)
        started = time.monotonic()
        with pytest.raises(PkiError) as err:
            tsa_key.sign_digest(bytes(32), SigScheme.ECDSA_SHA256)
        assert err.value.kind is ErrorKind.UNAVAILABLE and "busy" in err.value.message
        assert 0.25 < time.monotonic() - started < 2.0
    finally:
        release.set()
        holder.join()
    tsa_key.sign_digest(bytes(32), SigScheme.ECDSA_SHA256)


def test_tokens_found_by_serial_and_mismatches_said_plainly(settings, ca) -> None:  # type: ignore[no-untyped-def]
    """A configured serial finds the token (its label checked too); a serial of another
    token, or a label whose token has another serial, is a TOKEN error naming both."""
    from dataclasses import replace

    from keystore import token
    from keystore.online import online_key
    from pkicore.algorithms import SigScheme
    from pkicore.errors import ErrorKind, PkiError

    serials = {t.label: t.serial for t in token.list_tokens(settings)}
    online, issuing = serials[settings.online_token], serials[settings.ca_token]
    rec = ca.store.authority("tsa")                         # EC P-256 whatever the CA's key type
    node = replace(settings, online_token_serial=online)
    assert token.configured_serial(node, settings.online_token) == online
    online_key(node, rec.key_id).sign_digest(bytes(32), SigScheme.ECDSA_SHA256)

    with pytest.raises(PkiError) as err:
        online_key(replace(settings, online_token_serial="0123456789abcdef"), rec.key_id)
    assert err.value.kind is ErrorKind.TOKEN
    assert err.value.message == f"token {settings.online_token!r} has serial {online}, " \
                                "not the configured 0123456789abcdef"
    with pytest.raises(PkiError) as err:
        online_key(replace(settings, online_token_serial=issuing), rec.key_id)
    assert err.value.kind is ErrorKind.TOKEN
    assert err.value.message == f"the token with serial {issuing} is labelled {settings.ca_token!r}, " \
                                f"not {settings.online_token!r}"
    with pytest.raises(PkiError) as err:                    # the records name a key this token lacks
        online_key(node, b"\x00" * 8)
    assert err.value.kind is ErrorKind.TOKEN and "holds no key with id 0000000000000000" in err.value.message
    # One label, two serials in settings (root and issuing CA on one token): refused.
    same = replace(settings, ca_token=settings.root_token, ca_token_serial=online, root_token_serial=issuing)
    with pytest.raises(PkiError) as err:
        token.configured_serial(same, settings.root_token)
    assert err.value.kind is ErrorKind.BAD_INPUT


def test_sign_time_is_measured(tsa_key) -> None:  # type: ignore[no-untyped-def]
    """udun_token_sign_seconds{key_type} counts every signature (exposed at /metrics)."""
    from prometheus_client import REGISTRY

    from pkicore.algorithms import SigScheme

    tsa_key.sign_digest(bytes(32), SigScheme.ECDSA_SHA256)     # the histogram exists from the first
    labels = {"key_type": "ec-p256"}
    before = REGISTRY.get_sample_value("udun_token_sign_seconds_count", labels) or 0.0
    for _ in range(5):
        tsa_key.sign_digest(bytes(32), SigScheme.ECDSA_SHA256)
    assert REGISTRY.get_sample_value("udun_token_sign_seconds_count", labels) == before + 5
    assert (REGISTRY.get_sample_value("udun_token_sign_seconds_sum", labels) or 0.0) > 0.0


def test_a_renewed_key_missing_from_this_copy_keeps_the_previous_one(settings, ca) -> None:  # type: ignore[no-untyped-def]
    """A node whose copy of the online token predates a renewal (the database names a key
    the copy lacks) keeps signing with the previous key while its certificate lasts."""
    from ca import renewal
    from ca.delegated import DelegatedKey
    from keystore import token
    from keystore.online import online_session
    from pkicore.algorithms import SigScheme

    tsa_key = DelegatedKey(ca, "tsa", "TSA")
    before = tsa_key.current()
    renewal.renew(ca, "tsa")
    renewed = ca.store.authority("tsa")
    token.destroy_key(online_session(settings), renewed.key_id)     # as on a copy made before the renewal
    try:
        tsa_key._checked = 0.0                                          # the 30 s reload is due
        kept = tsa_key.current()
        assert kept is before and kept.cert.dump() != renewed.cert_der
        kept.key.sign_digest(bytes(32), SigScheme.ECDSA_SHA256)
    finally:
        renewal.renew(ca, "tsa")            # a current TSA key the token holds, for the tests after this one
    tsa_key._checked = 0.0
    assert tsa_key.current().cert.dump() == ca.store.authority("tsa").cert_der
