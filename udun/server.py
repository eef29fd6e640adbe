"""Running the API under gunicorn: sync workers, the app built after fork, TLS, metrics.

Order of settings: udun's defaults, then the operator's gunicorn file (UDUN_GUNICORN_CONFIG),
then the command line (--host/--port, --workers when given), then what udun never lets a
file change (LOCKED). TLS comes from UDUN_TLS_* only and is checked here, before gunicorn.
"""
from __future__ import annotations

import os
import runpy
import shutil
import ssl
import stat
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from gunicorn.app.base import BaseApplication
from gunicorn.config import Config
from gunicorn.workers.sync import SyncWorker

from config.settings import Settings, load_settings
from pkicore.errors import ErrorKind, PkiError
from webapi.peer import ENV_CLIENT_ISSUER, ENV_CLIENT_SERIAL, ENV_CLIENT_SHA256, ENV_CLIENT_SUBJECT

_TLS_REASON = "TLS comes from UDUN_TLS_CERT, UDUN_TLS_KEY, UDUN_TLS_CLIENT_CA and UDUN_TLS_CLIENT_AUTH " \
              "(checked at start, TLS 1.2 at least, only the named client CAs)"
_WORKER_REASON = "udun runs its own sync worker: one PKCS#11 session per process and no threads " \
                 "(two threads' sessions on SoftHSM crash the process; threads > 1 turns sync into gthread)"
# Settings a gunicorn file may not set, and why (the error names the reason).
# gunicorn settings by which an operator's file takes gunicorn's logging over.
OPERATOR_LOGGING = frozenset({"accesslog", "errorlog", "logconfig", "logconfig_dict", "logconfig_json",
                              "syslog"})

LOCKED: Mapping[str, str] = MappingProxyType({
    "preload_app": "PKCS#11 must be initialised after fork: each worker builds the app itself",
    "worker_class": _WORKER_REASON,
    "threads": _WORKER_REASON,
    "bind": "use udun serve --host and --port",
    "raw_env": "the workers must see the environment udun checked at start",
    "wsgi_app": "the app is udun's", "paste": "the app is udun's", "raw_paste_global_conf": "the app is udun's",
    **{name: _TLS_REASON for name in ("certfile", "keyfile", "ca_certs", "cert_reqs", "ssl_context",
                                      "ssl_version", "ciphers", "do_handshake_on_connect",
                                      "suppress_ragged_eofs")},
})


_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def _warn(message: str) -> None:
    print(f"udun: warning: {message}", file=sys.stderr, flush=True)


# --- TLS ------------------------------------------------------------------------------

def _read(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise PkiError(ErrorKind.BAD_INPUT, f"{variable} {path} cannot be read: {e.strerror or e}") from e


def _certificates(path: Path, variable: str, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(_read(path, variable))
    except ValueError as e:
        raise PkiError(ErrorKind.BAD_INPUT, f"{variable} {path} holds no PEM {what}") from e
    return certs


def _check_server_files(cert_path: Path, key_path: Path) -> None:
    """Clear errors for what OpenSSL would report as "PEM lib" or prompt for at a terminal."""
    cert = _certificates(cert_path, "UDUN_TLS_CERT", "certificate")[0]
    try:
        key = serialization.load_pem_private_key(_read(key_path, "UDUN_TLS_KEY"), password=None)
    except TypeError as e:
        # An encrypted key would make OpenSSL ask for its password in each worker.
        raise PkiError(ErrorKind.BAD_INPUT, f"UDUN_TLS_KEY {key_path} is encrypted: udun needs the key "
                                            "unencrypted, in a file only the udun user can read (0600)") from e
    except Exception as e:       # ValueError, or UnsupportedAlgorithm for a key type it lacks
        raise PkiError(ErrorKind.BAD_INPUT, f"UDUN_TLS_KEY {key_path} holds no PEM private key") from e
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise PkiError(ErrorKind.BAD_INPUT, f"UDUN_TLS_KEY {key_path} is not the key of the certificate in "
                                            f"UDUN_TLS_CERT {cert_path}")
    mode = stat.S_IMODE(key_path.stat().st_mode)
    if mode & stat.S_IROTH:
        _warn(f"UDUN_TLS_KEY {key_path} is readable by every user (mode {mode:04o}): chmod 0600 or 0640")
    now = datetime.now(timezone.utc)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        _warn(f"UDUN_TLS_CERT {cert_path} is not valid now (notBefore {cert.not_valid_before_utc:%Y-%m-%d}, "
              f"notAfter {cert.not_valid_after_utc:%Y-%m-%d}): clients will refuse it")


def tls_context(settings: Settings) -> ssl.SSLContext:
    """The server's SSLContext, from UDUN_TLS_*; PkiError (BAD_INPUT) for any bad file.

    Built on a bare PROTOCOL_TLS_SERVER context, not ssl.create_default_context: that one
    (gunicorn's default factory) loads the system's CA store when no client CA file is
    given, and client certificates from any public CA would then pass."""
    if settings.tls_cert is None or settings.tls_key is None:
        raise PkiError(ErrorKind.BAD_INPUT, "TLS needs UDUN_TLS_CERT and UDUN_TLS_KEY")
    _check_server_files(settings.tls_cert, settings.tls_key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2        # TLS 1.0/1.1: RFC 8996
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        ctx.load_cert_chain(str(settings.tls_cert), str(settings.tls_key), password=_no_password)
    except ssl.SSLError as e:
        raise PkiError(ErrorKind.BAD_INPUT, f"UDUN_TLS_CERT {settings.tls_cert} / UDUN_TLS_KEY "
                                            f"{settings.tls_key}: {e.reason or e}") from e
    if settings.tls_client_ca is not None:
        ca = settings.tls_client_ca
        _certificates(ca, "UDUN_TLS_CLIENT_CA", "CA certificate")
        try:
            ctx.load_verify_locations(cafile=str(ca))
        except ssl.SSLError as e:
            raise PkiError(ErrorKind.BAD_INPUT, f"UDUN_TLS_CLIENT_CA {ca}: {e.reason or e}") from e
        # Any certificate of the bundle is an anchor: the issuing CA alone is enough, so a
        # bank's CA does not have to bring in everything its root ever signed.
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    ctx.verify_mode = _CERT_REQS[settings.tls_client_auth]
    return ctx


def _no_password() -> str:
    raise PkiError(ErrorKind.BAD_INPUT, "UDUN_TLS_KEY is encrypted: udun needs it unencrypted (0600)")


class TlsFiles:
    """The server's SSLContext, built in the arbiter and inherited by the workers.

    gunicorn asks its ssl_context hook for a context on every connection; this hands out
    the one built at start (files read once, checked before any worker exists). On
    SIGHUP (systemctl reload) the files are read again, so a renewed certificate is
    served by the new workers; a renewed file that does not load keeps the old context,
    with a warning, rather than leaving the new workers unable to speak TLS."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.context = tls_context(settings)

    def reload(self) -> None:
        try:
            self.context = tls_context(self.settings)
        except PkiError as e:
            _warn(f"{e.message}; still serving the TLS files read before")

    def ssl_context(self, conf: Any, default_ssl_context_factory: Any) -> ssl.SSLContext:
        return self.context


def peer_environ(sock: object) -> dict[str, str]:
    """WSGI environ entries for the client certificate the handshake verified, if any."""
    if not isinstance(sock, ssl.SSLSocket):
        return {}
    der = sock.getpeercert(binary_form=True)
    if not der:
        return {}
    cert = x509.load_der_x509_certificate(der)
    return {ENV_CLIENT_SUBJECT: cert.subject.rfc4514_string(), ENV_CLIENT_ISSUER: cert.issuer.rfc4514_string(),
            ENV_CLIENT_SERIAL: format(cert.serial_number, "x"),
            ENV_CLIENT_SHA256: cert.fingerprint(hashes.SHA256()).hex()}


class UdunSyncWorker(SyncWorker):  # type: ignore[misc]
    """gunicorn's sync worker, which also puts the verified client certificate into environ.

    gunicorn's environ says nothing about the peer's certificate; the sync worker handles
    one request at a time, so the socket's certificate is kept for the request in hand."""

    _peer: dict[str, str] = {}

    def handle_request(self, listener: Any, req: Any, client: Any, addr: Any) -> Any:
        self._peer = peer_environ(client)
        try:
            return super().handle_request(listener, req, client, addr)
        finally:
            self._peer = {}

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app: Any = getattr(self, "wsgi")   # set by gunicorn's load_wsgi

        def with_peer(environ: dict[str, Any], start_response: Any) -> Any:
            environ.update(self._peer)
            return app(environ, start_response)

        self.wsgi = with_peer


# --- the operator's gunicorn file ------------------------------------------------------

def gunicorn_file_options(path: Path) -> dict[str, Any]:
    """The gunicorn settings a Python config file sets (as gunicorn reads one: names that
    are not settings are ignored), checked now so that errors come before the start."""
    try:
        st = path.stat()
    except OSError as e:
        raise PkiError(ErrorKind.BAD_INPUT, f"UDUN_GUNICORN_CONFIG {path} cannot be read: {e.strerror or e}") from e
    if st.st_mode & stat.S_IWOTH:   # it is code the server runs
        raise PkiError(ErrorKind.BAD_INPUT, f"UDUN_GUNICORN_CONFIG {path} is writable by every user "
                                            f"(mode {stat.S_IMODE(st.st_mode):04o}): chmod o-w")
    try:
        namespace = runpy.run_path(str(path), run_name="__config__")
    except Exception as e:
        raise PkiError(ErrorKind.BAD_INPUT, f"UDUN_GUNICORN_CONFIG {path} failed: {type(e).__name__}: {e}") from e
    probe = Config()
    options: dict[str, Any] = {}
    for name, value in namespace.items():
        if name.startswith("_") or name not in probe.settings:
            continue
        if name in LOCKED:
            raise PkiError(ErrorKind.BAD_INPUT, f"UDUN_GUNICORN_CONFIG {path}: {name} cannot be set here: "
                                                f"{LOCKED[name]}")
        try:
            probe.set(name, value)
        except Exception as e:
            raise PkiError(ErrorKind.BAD_INPUT, f"UDUN_GUNICORN_CONFIG {path}: {name}: {e}") from e
        options[name] = value
    return options


# --- prometheus-client multiprocess mode ----------------------------------------------

@dataclass(frozen=True)
class MetricsDir:
    """A fresh private directory for prometheus-client's per-process files, for one start.

    Workers write their metrics there and GET /metrics adds them up; files of an earlier
    run would be added too, hence a new directory each time, removed at exit."""

    path: Path
    owner: int

    @classmethod
    def create(cls) -> MetricsDir:
        _remove_stale(Path(tempfile.gettempdir()))
        path = Path(tempfile.mkdtemp(prefix=f"{_METRICS_PREFIX}{os.getpid()}-"))    # 0700
        # prometheus_client decides per-process or multiprocess values when it is first
        # imported, from this variable: it must be set before any metric exists.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
        values = sys.modules.get("prometheus_client.values")
        if values is not None:            # imported already: metrics made from now on count
            setattr(values, "ValueClass", values.get_value_class())
        return cls(path, os.getpid())

    def remove(self) -> None:
        # Workers unwind through serve() too (gunicorn exits them with SystemExit).
        if os.getpid() == self.owner:
            shutil.rmtree(self.path, ignore_errors=True)


_METRICS_PREFIX = "udun-metrics-"


def _remove_stale(tmp: Path) -> None:
    """Directories of servers that died without cleaning up (SIGKILL, power loss): ours
    (same user), named after a process that no longer exists."""
    try:
        entries = list(tmp.glob(f"{_METRICS_PREFIX}*-*"))
    except OSError:
        return
    for entry in entries:
        pid = entry.name[len(_METRICS_PREFIX):].split("-", 1)[0]
        try:
            if not pid.isdigit() or entry.lstat().st_uid != os.getuid() or not entry.is_dir():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue             # alive under another user, or gone meanwhile


def _mark_dead(server: Any, worker: Any) -> None:
    """child_exit: drop a dead worker's live gauges (prometheus-client multiprocess mode)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _chain(*hooks: Callable[[Any, Any], Any] | None) -> Callable[[Any, Any], None]:
    def hook(server: Any, worker: Any) -> None:
        for h in hooks:
            if h is not None:
                h(server, worker)
    return hook


# --- gunicorn ------------------------------------------------------------------------

class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any], admin: bool = False, tls: TlsFiles | None = None) -> None:
        self.options = options
        self.admin = admin
        self.tls = tls
        self._loaded = False
        super().__init__()

    def load_config(self) -> None:
        # Called at start and again on SIGHUP (gunicorn's reload), in the arbiter.
        if self._loaded and self.tls is not None:
            self.tls.reload()
        self._loaded = True
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Imported here, in the worker: PKCS#11 and the database are opened after fork.
        if self.admin:
            from adminapi import create_admin_app

            return create_admin_app()
        from webapi.app import create_app

        return create_app(schedule_checkpoints=True)


def gunicorn_options(settings: Settings, host: str, port: int, workers: int | None,
                     operator: Mapping[str, Any], tls: TlsFiles | None = None) -> dict[str, Any]:
    """udun's defaults < the operator's file < the command line < LOCKED."""
    options: dict[str, Any] = {
        "workers": os.cpu_count() or 1,
        "accesslog": None,            # the app logs each request itself (JSON lines)
        "errorlog": "-",
        "loglevel": "warning",
        "keepalive": 5,
        "graceful_timeout": 5,
        # gunicorn >= 25.1 opens a control socket at $HOME/.gunicorn/gunicorn.ctl: one path
        # for every server of the user (serve and serve-admin would take it from each other).
        "control_socket_disable": True,
    }
    options.update({k: v for k, v in operator.items() if k != "child_exit"})
    if workers is not None:
        options["workers"] = workers
    options.update({
        "bind": f"{host}:{port}",
        "worker_class": UdunSyncWorker,
        "threads": 1,
        "preload_app": False,
        "raw_env": [],
        "child_exit": _chain(_mark_dead, operator.get("child_exit")),
    })
    if tls is not None:
        options.update({
            "certfile": str(settings.tls_cert),
            "keyfile": str(settings.tls_key),
            "ca_certs": str(settings.tls_client_ca) if settings.tls_client_ca else None,
            "cert_reqs": _CERT_REQS[settings.tls_client_auth],
            "ssl_context": tls.ssl_context,
        })
    return options


def serve(host: str, port: int, workers: int | None = None, *, admin: bool = False,
          settings: Settings | None = None) -> None:
    """Run until SIGTERM/SIGINT. `preload_app` stays off (PKCS#11 after fork).

    Sync workers: verification is CPU-bound, so threads buy nothing under the GIL, and
    gthread pins each keep-alive connection to the worker that accepted it, which left
    one core idle in `make bench` (about 1,000 against 2,000 requests/s). Put a reverse
    proxy in front for slow clients and keep-alive.
    """
    s = settings or load_settings()
    tls = TlsFiles(s) if s.tls else None        # bad files fail here, before gunicorn starts
    if tls is not None:
        auth = "" if s.tls_client_auth == "none" else \
            f", client certificates {s.tls_client_auth} (CAs in {s.tls_client_ca})"
        print(f"udun: TLS on (certificate {s.tls_cert}){auth}", file=sys.stderr, flush=True)
    operator = gunicorn_file_options(s.gunicorn_config) if s.gunicorn_config else {}
    options = gunicorn_options(s, host, port, workers, operator, tls)
    metrics = MetricsDir.create()
    # gunicorn's own error log as udun's JSON lines on the same target, its access log off;
    # unless the operator's gunicorn file says where its logs go (then that file decides).
    if not OPERATOR_LOGGING.intersection(operator):
        from webapi.observability import gunicorn_logconfig
        options["logconfig_dict"] = gunicorn_logconfig(s)
    try:
        _Gunicorn(options, admin, tls).run()
    finally:
        metrics.remove()
