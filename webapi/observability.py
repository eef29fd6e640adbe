"""Operations: Prometheus metrics, one JSON access-log line per request, request ids.

``Observed`` wraps the whole WSGI stack (outside the OCSP and TSA fast paths, which answer
without Flask) so that every request, fast path or not, is counted, timed, logged once and
given an ``X-Request-ID``. Labels are route names from a fixed set, never raw paths: a
client cannot grow the metrics without limit.

Under gunicorn, udun/server.py sets PROMETHEUS_MULTIPROC_DIR before workers fork; /metrics
then sums every worker's files (prometheus-client's multiprocess mode). Without it (tests,
one process) the default registry is served.

The access line holds the method, the route, the path without its query string, status,
size, duration, remote address and request id: never a body, a header value other than the
request id, a PIN, a key or an account number (tests/logscan.py scans a whole test run).
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from config.settings import Settings

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

REQUESTS = Counter("udun_http_requests_total", "HTTP requests answered, by route and status", ["route", "status"])
LATENCY = Histogram("udun_http_request_seconds", "time to answer a request, by route", ["route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0))
VERIFICATIONS = Counter("udun_verifications_total", "payments verified, by indication and sub-indication",
                        ["indication", "sub_indication"])

_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")      # an incoming X-Request-ID we pass on as it is
_ROUTES = ("/api/v1/verify", "/api/v1/challenges", "/api/v1/evidence", "/api/v1/certificates", "/ocsp", "/tsa",
           "/crl", "/ca", "/healthz", "/readyz", "/metrics", "/openapi.json")
access_log = logging.getLogger("udun.access")


def route_of(path: str) -> str:
    """The route label of ``path``: one of a fixed set, else "other"."""
    for r in _ROUTES:
        if path == r or path.startswith(r + "/"):
            return r
    return "other"


def request_id(environ: dict[str, Any]) -> str:
    """The caller's X-Request-ID when it is a short safe token, else a new one."""
    given = environ.get("HTTP_X_REQUEST_ID", "")
    return given if _ID.match(given) else secrets.token_hex(16)


class Observed:
    """The outermost WSGI layer: request id, metrics, the access-log line."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        rid = request_id(environ)
        environ["udun.request_id"] = rid
        started = time.perf_counter()
        seen: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen["status"] = status[:3]
            seen["bytes"] = next((v for k, v in headers if k.lower() == "content-length"), None)
            return start_response(status, [*headers, ("X-Request-ID", rid)], exc_info)

        body = self.app(environ, start)
        try:
            return list(body)          # the answers are small and whole; this lets the line hold the size
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            self._record(environ, rid, seen, time.perf_counter() - started)

    @staticmethod
    def _record(environ: dict[str, Any], rid: str, seen: dict[str, Any], seconds: float) -> None:
        path = environ.get("PATH_INFO", "")
        route = route_of(path)
        status = seen.get("status", "500")
        REQUESTS.labels(route, status).inc()
        LATENCY.labels(route).observe(seconds)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info("request", extra={"fields": {
                "request_id": rid, "method": environ.get("REQUEST_METHOD"), "route": route,
                "path": path[:200] if route not in ("/ocsp",) else route,   # GET /ocsp/<request>: not logged
                "status": int(status), "bytes": int(seen["bytes"]) if seen.get("bytes") else None,
                "duration_ms": round(seconds * 1000, 3), "remote_addr": environ.get("REMOTE_ADDR")}})


def count_verification(indication: str, sub_indication: str | None) -> None:
    VERIFICATIONS.labels(indication, sub_indication or "").inc()


def metrics_body() -> tuple[bytes, str]:
    """The exposition text of this service (all workers under gunicorn) and its media type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, RFC 3339), level, logger, message, fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        out.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = record.exc_info[0].__name__       # the type only: a traceback may hold data
        return json.dumps(out, ensure_ascii=False)


_configured: list[str] = []


def configure_logging(settings: Settings) -> None:
    """udun's loggers write JSON lines to UDUN_LOG_FILE (appended) or stderr; once per process."""
    target = settings.log_file or "-"
    if target in _configured:
        return
    handler: logging.Handler = logging.StreamHandler() if target == "-" else logging.FileHandler(target, "a",
                                                                                                  "utf-8")
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("udun")
    for old in list(root.handlers):
        if getattr(old, "_udun", False):
            root.removeHandler(old)
    handler._udun = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    root.propagate = False
    _configured[:] = [target]
