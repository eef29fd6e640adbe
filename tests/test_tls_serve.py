"""Issue 11: TLS for `udun serve` (a real gunicorn), banks' client certificates, the
operator's gunicorn file, and the metrics directory of prometheus-client's multiprocess mode.

The server certificate comes from a small test CA made with `cryptography`; the banks'
client certificates from udun's own CA (the session's), so UDUN_TLS_CLIENT_CA is
`udun ca chain`, as an operator would configure it; a certificate from another CA is refused.
"""
from __future__ import annotations

import contextlib
import http.client
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from helpers import free_port, home_env, stop_process, udun

BANK_SUBJECT = "CN=Example Bank API,O=Example Bank,C=CN"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                                                       "udun TLS tests")])


def _cert(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
          issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool, eku: list[x509.ObjectIdentifier] | None = None,
          san: list[x509.GeneralName] | None = None) -> x509.Certificate:
    t = datetime.now(UTC)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(t - timedelta(minutes=5))
         .not_valid_after(t + timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                      encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    enc: serialization.KeySerializationEncryption = serialization.NoEncryption() if password is None \
        else serialization.BestAvailableEncryption(password)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def _write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


@dataclass(frozen=True)
class Pki:
    dir: Path
    server_ca: Path        # what clients trust for the server
    server_cert: Path
    server_key: Path
    bank_ca: Path          # UDUN_TLS_CLIENT_CA: udun's CA chain
    bank_cert: Path        # issued by udun's CA (client profile: clientAuth)
    bank_key: Path
    rogue_cert: Path       # clientAuth too, from a CA the server does not trust
    rogue_key: Path


@pytest.fixture(scope="module")
def pki(ca, tmp_path_factory: pytest.TempPathFactory) -> Pki:  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("tls")
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert(_name("TLS Test Root"), root_key, _name("TLS Test Root"), root_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _cert(_name("udun test server"), server_key, root.subject, root_key, ca=False,
                   eku=[ExtendedKeyUsageOID.SERVER_AUTH],
                   san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    # A bank's API client: key made here, certificate from udun's CA through a CSR.
    bank_key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name.from_rfc4514_string(BANK_SUBJECT)
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(bank_key, hashes.SHA256())
    rec = ca.issue(csr.public_bytes(serialization.Encoding.DER), "client", requester="pytest-tls")
    assert rec.der is not None
    rogue_root_key = ec.generate_private_key(ec.SECP256R1())
    rogue_root = _cert(_name("Rogue Root"), rogue_root_key, _name("Rogue Root"), rogue_root_key, ca=True)
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = _cert(x509.Name.from_rfc4514_string(BANK_SUBJECT), rogue_key, rogue_root.subject, rogue_root_key,
                  ca=False, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    chain = b"".join(_pem(x509.load_der_x509_certificate(der)) for der in ca.chain_der())
    _write(d / "server-ca.key", _key_pem(root_key))
    return Pki(dir=d, server_ca=_write(d / "server-ca.pem", _pem(root), 0o644),
               server_cert=_write(d / "server.pem", _pem(server), 0o644),
               server_key=_write(d / "server.key", _key_pem(server_key)),
               bank_ca=_write(d / "bank-cas.pem", chain, 0o644),
               bank_cert=_write(d / "bank.pem", _pem(x509.load_der_x509_certificate(rec.der)), 0o644),
               bank_key=_write(d / "bank.key", _key_pem(bank_key)),
               rogue_cert=_write(d / "rogue.pem", _pem(rogue) + _pem(rogue_root), 0o644),
               rogue_key=_write(d / "rogue.key", _key_pem(rogue_key)))


def _client(pki: Pki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.server_ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _get(port: int, ctx: ssl.SSLContext | None, path: str = "/healthz") -> tuple[int, bytes]:
    """GET over https (ctx) or plain http (None); one connection each time."""
    conn: http.client.HTTPConnection = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10) \
        if ctx is not None else http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@dataclass(frozen=True)
class Server:
    port: int
    proc: subprocess.Popen[bytes]
    tmpdir: Path           # the server's TMPDIR: where its metrics directory is made


@contextlib.contextmanager
def tls_server(home: Path, env: dict[str, str], ready: ssl.SSLContext, tmp: Path) -> Iterator[Server]:
    """`udun serve` (gunicorn, one worker) with TLS; ready when /healthz answers over https
    with ``ready`` (helpers.running_server polls plain http)."""
    port = free_port()
    tmpdir = tmp / f"tmp-{port}"
    tmpdir.mkdir()
    full = {k: v for k, v in os.environ.items() if k != "UDUN_CA_PIN"}
    full.update({"UDUN_HOME": str(home), "TMPDIR": str(tmpdir), **env})
    proc = subprocess.Popen([sys.executable, "-m", "udun.cli", "serve", "--port", str(port), "--workers", "1"],
                            env=home_env(full), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if _get(port, ready)[0] == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {proc.stderr.read() if proc.stderr else b''!r}")
            time.sleep(0.2)
        yield Server(port, proc, tmpdir)
    finally:
        stop_process(proc)


def _tls_env(pki: Pki, **more: str) -> dict[str, str]:
    return {"UDUN_TLS_CERT": str(pki.server_cert), "UDUN_TLS_KEY": str(pki.server_key), **more}


def _refused(port: int, ctx: ssl.SSLContext | None) -> BaseException:
    with pytest.raises((ssl.SSLError, OSError, http.client.HTTPException)) as info:
        _get(port, ctx)
    return info.value


def _old_tls_client(pki: Pki, highest: ssl.TLSVersion) -> ssl.SSLContext:
    """A client willing to speak TLS 1.0 up to ``highest`` (security level 0: OpenSSL 3's
    default level forbids TLS 1.1 on the client side already, which would prove nothing)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(pki.server_ca))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():          # ssl deprecates naming TLS 1.0 and 1.1, as it should
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = highest
    return ctx


def test_https_only_tls12_and_up(ca, home: Path, pki: Pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with tls_server(home, _tls_env(pki), _client(pki), tmp_path) as server:
        status, body = _get(server.port, _client(pki))
        assert status == 200 and b'"ok"' in body
        # curl with the CA file, as an operator checks it
        curl = subprocess.run(["curl", "-sS", "-f", "--cacert", str(pki.server_ca),
                               f"https://127.0.0.1:{server.port}/healthz"], capture_output=True, timeout=30)
        assert curl.returncode == 0 and b'"ok"' in curl.stdout, curl.stderr
        # plain http on the TLS port gets no answer from the app
        with contextlib.suppress(ssl.SSLError, OSError, http.client.HTTPException):
            status, _ = _get(server.port, None)
            assert status != 200
        # a client that does not trust the server's CA stops at the handshake
        assert isinstance(_refused(server.port, ssl.create_default_context()), ssl.SSLCertVerificationError)
        # TLS 1.1 refused by the server; the same client at TLS 1.2 is served
        assert _get(server.port, _old_tls_client(pki, ssl.TLSVersion.TLSv1_2))[0] == 200
        old = _refused(server.port, _old_tls_client(pki, ssl.TLSVersion.TLSv1_1))
        assert isinstance(old, ssl.SSLError) and old.reason in (
            "TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "WRONG_SSL_VERSION"), old
        tls13 = _client(pki)
        tls13.minimum_version = ssl.TLSVersion.TLSv1_3
        assert _get(server.port, tls13)[0] == 200
        # prometheus-client's multiprocess directory: fresh, private, in the server's TMPDIR
        dirs = list(server.tmpdir.glob("udun-metrics-*"))
        assert len(dirs) == 1 and (dirs[0].stat().st_mode & 0o777) == 0o700
    assert not list(server.tmpdir.glob("udun-metrics-*")), "removed at exit"
    assert server.proc.returncode == 0


def _gunicorn_file(tmp_path: Path, access_log: Path) -> Path:
    path = tmp_path / "gunicorn.conf.py"
    path.write_text(f'''
import os   # names that are not gunicorn settings are ignored, as gunicorn does
accesslog = {str(access_log)!r}
access_log_format = "subject=%({{udun.tls.client_subject}}e)s serial=%({{udun.tls.client_serial}}e)s %(s)s"
timeout = 20
''', encoding="utf-8")
    return path


def _log_lines(path: Path, count: int) -> list[str]:
    deadline = time.monotonic() + 10
    while True:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_required_client_certificates(ca, home: Path, pki: Pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bank = _client(pki, pki.bank_cert, pki.bank_key)
    access = tmp_path / "access.log"
    env = _tls_env(pki, UDUN_TLS_CLIENT_CA=str(pki.bank_ca), UDUN_TLS_CLIENT_AUTH="required",
                   UDUN_GUNICORN_CONFIG=str(_gunicorn_file(tmp_path, access)))
    with tls_server(home, env, bank, tmp_path) as server:
        before = len(_log_lines(access, 0))
        assert _get(server.port, bank)[0] == 200
        # no certificate, or one from another CA: refused in the handshake (TLS 1.3 reports
        # it on the client's first read, TLS 1.2 in the handshake itself)
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            for ctx in (_client(pki), _client(pki, pki.rogue_cert, pki.rogue_key)):
                ctx.minimum_version = ctx.maximum_version = version
                err = _refused(server.port, ctx)
                assert isinstance(err, (ssl.SSLError, ConnectionResetError, BrokenPipeError)), (version, err)
        # the app's environ carried the verified certificate (seen through gunicorn's access log)
        lines = _log_lines(access, before + 1)
        bank_lines = [line for line in lines if "serial=" in line and "200" in line and "Example Bank" in line]
        assert bank_lines, lines
        serial = format(x509.load_pem_x509_certificate(pki.bank_cert.read_bytes()).serial_number, "x")
        assert f"subject={BANK_SUBJECT} serial={serial} 200" in bank_lines[-1], bank_lines[-1]
        assert len([line for line in lines if " 200" in line]) == len(bank_lines), "only the bank was served"


def test_optional_client_certificates(ca, home: Path, pki: Pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = _tls_env(pki, UDUN_TLS_CLIENT_CA=str(pki.bank_ca), UDUN_TLS_CLIENT_AUTH="optional")
    with tls_server(home, env, _client(pki), tmp_path) as server:
        assert _get(server.port, _client(pki))[0] == 200                        # none: served
        assert _get(server.port, _client(pki, pki.bank_cert, pki.bank_key))[0] == 200
        _refused(server.port, _client(pki, pki.rogue_cert, pki.rogue_key))   # a wrong one: refused


def _served_serial(port: int, ctx: ssl.SSLContext) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number


def _new_server_cert(pki: Pki, cert: Path, key: Path) -> int:
    """A new certificate and key for the server, from the same test CA, written in place."""
    root_key = serialization.load_pem_private_key((pki.dir / "server-ca.key").read_bytes(), None)
    assert isinstance(root_key, ec.EllipticCurvePrivateKey)
    root = x509.load_pem_x509_certificate(pki.server_ca.read_bytes())
    new_key = ec.generate_private_key(ec.SECP256R1())
    new = _cert(_name("udun test server"), new_key, root.subject, root_key, ca=False,
                eku=[ExtendedKeyUsageOID.SERVER_AUTH], san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    _write(key, _key_pem(new_key))
    _write(cert, _pem(new), 0o644)
    return new.serial_number


def test_sighup_reads_renewed_tls_files_and_keeps_the_old_on_a_bad_one(ca, home: Path, pki: Pki,  # type: ignore[no-untyped-def]
                                                                       tmp_path: Path) -> None:
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    _write(cert, pki.server_cert.read_bytes(), 0o644)
    _write(key, pki.server_key.read_bytes())
    first = x509.load_pem_x509_certificate(cert.read_bytes()).serial_number
    client = _client(pki)
    with tls_server(home, {"UDUN_TLS_CERT": str(cert), "UDUN_TLS_KEY": str(key)}, client, tmp_path) as server:
        assert _served_serial(server.port, client) == first
        second = _new_server_cert(pki, cert, key)
        os.kill(server.proc.pid, signal.SIGHUP)          # systemctl reload
        deadline = time.monotonic() + 30
        while _served_serial(server.port, client) != second:
            assert time.monotonic() < deadline, "the renewed certificate was not served after SIGHUP"
            time.sleep(0.2)
        cert.write_bytes(b"-----BEGIN CERTIFICATE-----\ntruncated\n")   # a bad renewal
        os.kill(server.proc.pid, signal.SIGHUP)
        time.sleep(3)                                     # the new workers have replaced the old
        assert _served_serial(server.port, client) == second
        assert _get(server.port, client)[0] == 200
    assert server.proc.stderr is not None
    err = server.proc.stderr.read().decode()
    assert f"UDUN_TLS_CERT {cert} holds no PEM certificate; still serving the TLS files read before" in err, err


def _serve_fails(env: dict[str, str]) -> str:
    full = {k: v for k, v in os.environ.items() if k != "UDUN_CA_PIN"}
    proc = udun("serve", "--port", str(free_port()), env={**full, **env}, timeout=60)
    assert proc.returncode == 2, proc.stderr
    return proc.stderr.decode()


def test_bad_tls_files_are_refused_before_gunicorn(ca, pki: Pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "missing.pem"
    err = _serve_fails({"UDUN_TLS_CERT": str(missing), "UDUN_TLS_KEY": str(pki.server_key)})
    assert f"UDUN_TLS_CERT {missing} cannot be read: No such file or directory" in err
    assert "gunicorn" not in err.lower() and "Booting" not in err
    other = _write(tmp_path / "other.key", _key_pem(ec.generate_private_key(ec.SECP256R1())))
    err = _serve_fails(_tls_env(pki, UDUN_TLS_KEY=str(other)))
    assert f"UDUN_TLS_KEY {other} is not the key of the certificate" in err
    locked = _write(tmp_path / "locked.key", _key_pem(ec.generate_private_key(ec.SECP256R1()), b"pw"))
    err = _serve_fails(_tls_env(pki, UDUN_TLS_KEY=str(locked)))
    assert "is encrypted" in err
    err = _serve_fails(_tls_env(pki, UDUN_TLS_CERT=str(pki.server_key)))
    assert "holds no PEM certificate" in err
    empty = _write(tmp_path / "empty.pem", b"")
    err = _serve_fails(_tls_env(pki, UDUN_TLS_CLIENT_CA=str(empty), UDUN_TLS_CLIENT_AUTH="required"))
    assert f"UDUN_TLS_CLIENT_CA {empty} holds no PEM CA certificate" in err
    err = _serve_fails(_tls_env(pki, UDUN_TLS_CLIENT_CA=str(missing), UDUN_TLS_CLIENT_AUTH="required"))
    assert f"UDUN_TLS_CLIENT_CA {missing} cannot be read" in err


# --- the gunicorn file and the hooks, in-process ---------------------------------------

def test_gunicorn_file_applies_over_defaults_and_cannot_unlock(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    from udun import server

    conf = tmp_path / "g.py"
    conf.write_text("workers = 3\ntimeout = 17\nloglevel = 'info'\nhelper = 42\n", encoding="utf-8")
    operator = server.gunicorn_file_options(conf)
    assert operator == {"workers": 3, "timeout": 17, "loglevel": "info"}
    opts = server.gunicorn_options(settings, "127.0.0.1", 8080, None, operator)
    assert (opts["workers"], opts["timeout"], opts["loglevel"], opts["preload_app"]) == (3, 17, "info", False)
    assert server.gunicorn_options(settings, "127.0.0.1", 8080, 2, operator)["workers"] == 2   # --workers wins
    assert opts["worker_class"] is server.UdunSyncWorker and opts["threads"] == 1
    assert opts["control_socket_disable"] is True and opts["accesslog"] is None
    for line in ("preload_app = True", "worker_class = 'gthread'", "threads = 4", "bind = ['0.0.0.0:80']",
                 "certfile = '/tmp/x.pem'", "raw_env = ['UDUN_HOME=/tmp']",
                 "def ssl_context(conf, factory):\n    return factory()"):
        conf.write_text(line + "\n", encoding="utf-8")
        with pytest.raises(Exception) as info:
            server.gunicorn_file_options(conf)
        name = line.split()[1 if line.startswith("def") else 0].split("(")[0]
        assert f"{name} cannot be set here" in str(info.value), (line, info.value)
    conf.write_text("workers = 'many'\n", encoding="utf-8")
    with pytest.raises(Exception, match="workers"):
        server.gunicorn_file_options(conf)
    conf.write_text("workers = (\n", encoding="utf-8")
    with pytest.raises(Exception, match="SyntaxError"):
        server.gunicorn_file_options(conf)
    conf.write_text("workers = 2\n", encoding="utf-8")
    conf.chmod(0o666)
    with pytest.raises(Exception, match="writable by every user"):
        server.gunicorn_file_options(conf)


def test_child_exit_marks_the_worker_dead_and_chains(tmp_path: Path, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from udun import server

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in ("gauge_livesum_4242.db", "gauge_liveall_4242.db", "counter_4242.db"):
        (tmp_path / name).write_bytes(b"")
    seen: list[int] = []

    class Worker:
        pid = 4242

    hook = server.gunicorn_options(settings, "127.0.0.1", 1, None,
                                   {"child_exit": lambda _s, w: seen.append(w.pid)})["child_exit"]
    hook(None, Worker())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_4242.db"]     # live gauges gone
    assert seen == [4242]                                                      # the operator's hook ran too


def test_metrics_dir_is_private_and_removed_only_by_its_owner(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from udun import server

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    # setenv first so that teardown removes what create() sets (delenv alone records nothing
    # when the variable is absent).
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    import prometheus_client.values as values
    # create() switches this process's metric values to multiprocess files; put the
    # in-process class back afterwards, or later tests' metrics write into a removed dir.
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    dead = subprocess.Popen(["true"])                    # a pid that has exited
    dead.wait()
    stale = tmp_path / f"udun-metrics-{dead.pid}-abc"      # a SIGKILLed server's
    live = tmp_path / f"udun-metrics-{os.getppid()}-abc"   # a running process's: kept
    for d in (stale, live):
        d.mkdir()
        (d / "counter_1.db").write_bytes(b"")
    metrics = server.MetricsDir.create()
    assert not stale.exists() and live.is_dir()
    try:
        assert metrics.path.parent == tmp_path and (metrics.path.stat().st_mode & 0o777) == 0o700
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(metrics.path)
        server.MetricsDir(metrics.path, owner=os.getpid() + 1).remove()     # a worker unwinding
        assert metrics.path.is_dir()
    finally:
        metrics.remove()
    assert not metrics.path.exists()


def test_peer_environ_without_tls_is_empty() -> None:
    from udun import server

    with socket.socket() as s:
        assert server.peer_environ(s) == {}


def test_locked_names_are_gunicorn_settings() -> None:
    from gunicorn.config import Config

    from udun import server

    assert set(server.LOCKED) <= set(Config().settings)


def _post(port: int, ctx: ssl.SSLContext, path: str, headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request("POST", path, body=b"", headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_a_bank_authenticated_by_its_client_certificate(ca, home: Path, pki: Pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 12 point 1: a registered client certificate is the bank's credential (no key);
    with another bank's key it is refused; removed, it no longer works."""
    from helpers import bank_key, udun

    name = f"tls-{os.urandom(4).hex()}"
    assert udun("bank", "add", name).returncode == 0
    added = udun("bank", "cert", "add", name, str(pki.bank_cert), "--scope", "challenges")
    assert added.returncode == 0, added.stderr
    sha = x509.load_pem_x509_certificate(pki.bank_cert.read_bytes()).fingerprint(hashes.SHA256()).hex()
    other_key = bank_key(ca.store, ca.clock, f"{name}-other")
    env = _tls_env(pki, UDUN_TLS_CLIENT_CA=str(pki.bank_ca), UDUN_TLS_CLIENT_AUTH="optional")
    bank, anonymous = _client(pki, pki.bank_cert, pki.bank_key), _client(pki)
    with tls_server(home, env, anonymous, tmp_path) as server:
        assert _post(server.port, bank, "/api/v1/challenges") == 201
        assert _post(server.port, anonymous, "/api/v1/challenges") == 401
        assert _post(server.port, bank, "/api/v1/verify") == 403                    # its scopes only
        stolen = {"Authorization": f"Bearer {other_key}"}
        assert _post(server.port, bank, "/api/v1/challenges", stolen) == 401         # another bank's key
        assert _post(server.port, anonymous, "/api/v1/challenges", stolen) == 201    # that key alone: its bank
        assert udun("bank", "cert", "remove", sha).returncode == 0
        assert _post(server.port, bank, "/api/v1/challenges") == 401
