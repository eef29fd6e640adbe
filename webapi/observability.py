"""Operations: Prometheus metrics, JSON log lines, request ids (issue 11).

``Observed`` is the outermost WSGI layer of both services, outside the OCSP and TSA fast
paths (which answer without Flask), so every request is given a request id
(X-Request-ID), counted, timed and logged once. Route labels are URL rule templates
(Flask's, tagged by ``tag_flask_route``; the fast paths tag their own), never raw paths:
a client cannot grow the metrics without bound.

Under gunicorn, udun/server.py sets PROMETHEUS_MULTIPROC_DIR before the workers fork; the
values then live in per-process files and GET /metrics sums every worker's
(prometheus-client's multiprocess mode, where custom collectors are not collected: hence
the pool gauges below are kept by pool events, not read at scrape time). Without it
(tests, one process) the default registry is served, with whatever else registered there
(keystore.token's udun_token_sign_seconds).

Log lines hold no body, no header but the request id, no PIN, key or account number:
messages go through ``scrub`` and the access line carries only the fields below
(tests/logscan.py scans a whole test run for the run's secrets).
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sys
import time
import weakref
from contextvars import ContextVar
from typing import Any, Callable, Iterable

from flask import request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from config.settings import Settings
from pkicore.errors import ErrorKind, PkiError

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# --- metrics ----------------------------------------------------------------------------

REQUESTS = Counter("udun_http_requests_total", "HTTP requests answered, by route template and status",
                   ["route", "status"])
LATENCY = Histogram("udun_http_request_seconds", "Seconds until a request's answer was ready, by route template",
                    ["route"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                                        10.0))
VERIFICATIONS = Counter("udun_verifications_total", "Payments verified (POST /api/v1/verify), by ETSI EN 319 102-1 "
                        "indication and sub-indication (empty when none)", ["indication", "sub_indication"])
OCSP = Counter("udun_ocsp_responses_total", "OCSP answers, by responseStatus and source: cached (pre-signed), "
               "signed (for this request), none (an unsigned error status)", ["status", "source"])
TSA = Counter("udun_tsa_responses_total", "POST /tsa answers, by PKIStatus (granted: a token issued; rejection: "
              "refused) and failInfo (empty when granted)", ["status", "fail_info"])
# livesum: summed over the live workers; a dead worker's part goes with it (mark_process_dead).
POOL_CHECKED_OUT = Gauge("udun_db_pool_checked_out", "Database connections checked out of the CA engine's pool "
                         "(the hot paths keep one per thread)", ["database"], multiprocess_mode="livesum")
POOL_SIZE = Gauge("udun_db_pool_size", "Connections the CA engine's pool keeps (SQLAlchemy pool_size)",
                  ["database"], multiprocess_mode="livesum")

# labels() takes a lock and checks its arguments each time: the children are kept here,
# made on first use (after fork, so that they write to this worker's multiprocess files).
_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def count_verification(indication: str, sub_indication: str | None) -> None:
    _child(VERIFICATIONS, indication, sub_indication or "").inc()


def count_ocsp(status: str, source: str) -> None:
    _child(OCSP, status, source).inc()


def count_tsa(status: str, fail_info: str) -> None:
    _child(TSA, status, fail_info).inc()


def metrics_body() -> tuple[bytes, str]:
    """The exposition text of this service (all its workers under gunicorn) and its media type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


_watched: weakref.WeakSet[Engine] = weakref.WeakSet()


def watch_pool(engine: Engine) -> None:
    """Keep udun_db_pool_* for ``engine`` (once per engine and process)."""
    if engine in _watched:
        return
    _watched.add(engine)
    out = _child(POOL_CHECKED_OUT, engine.dialect.name)
    # Pool events, not a collector read at scrape time: the scrape is answered by one
    # worker, which cannot see the others' pools. Checkouts on the hot paths are rare
    # (ca.storage.raw keeps a connection per thread), so this costs them nothing.
    event.listen(engine, "checkout", lambda *_: out.inc())
    event.listen(engine, "checkin", lambda *_: out.dec())
    event.listen(engine, "detach", lambda *_: out.dec())     # returned to the pool without a checkin
    pool: Any = engine.pool
    if callable(getattr(pool, "checkedout", None)):
        out.inc(pool.checkedout())                          # taken before we listened (create_app's reads)
    size = pool.size() if callable(getattr(pool, "size", None)) else 0
    if size:
        held = _child(POOL_SIZE, engine.dialect.name)
        held.inc(size)
        weakref.finalize(engine, held.dec, size)


# --- requests -----------------------------------------------------------------------------

ROUTE = "udun.route"                 # environ key: the route template (dotted: no client header can set it)
UNMATCHED = "unmatched"              # no route (404, 405): one label for every such path
OCSP_POST_ROUTE, OCSP_GET_ROUTE, TSA_ROUTE = "/ocsp", "/ocsp/<request>", "/tsa"
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{8,64}").fullmatch     # an incoming X-Request-ID we pass on as it is
_request_id: ContextVar[str | None] = ContextVar("udun_request_id", default=None)
access_log = logging.getLogger("udun.access")


def current_request_id() -> str | None:
    """The id of the request this thread is answering, if any."""
    return _request_id.get()


def request_id(environ: dict[str, Any]) -> str:
    """The caller's X-Request-ID when it is a short safe token, else a new random one."""
    given = environ.get("HTTP_X_REQUEST_ID")
    return given if given is not None and _SAFE_ID(given) else secrets.token_hex(16)


def tag_flask_route() -> None:
    """Flask before_request hook (app-wide, so it runs first and also for 404/405): the route template."""
    rule = request.url_rule
    request.environ[ROUTE] = rule.rule if rule is not None else UNMATCHED


class Observed:
    """The outermost WSGI layer: request id, metrics, the access-log line."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        rid = request_id(environ)
        token = _request_id.set(rid)
        started = time.perf_counter()
        status = ["500"]                 # if the app raises, the server answers 500

        def start(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[0] = line[:3]
            return start_response(line, [*headers, ("X-Request-ID", rid)], exc_info)

        chunks: list[bytes] = []         # stays empty if the app raises
        try:
            body = self.app(environ, start)
            # The fast paths answer a list; Flask an iterator, read whole here (udun's
            # answers are small and whole) so that the line can hold the size.
            chunks = body if type(body) is list else _whole(body)
            return chunks
        finally:
            _record(environ, rid, status[0], chunks, time.perf_counter() - started)
            _request_id.reset(token)


def _whole(body: Iterable[bytes]) -> list[bytes]:
    """The chunks of a WSGI answer, its ``close`` called (PEP 3333)."""
    try:
        return list(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def _record(environ: dict[str, Any], rid: str, status: str, body: list[bytes], seconds: float) -> None:
    route = environ.get(ROUTE, UNMATCHED)
    _child(REQUESTS, route, status).inc()
    _child(LATENCY, route).observe(seconds)
    if not access_log.isEnabledFor(logging.INFO):
        return
    # GET /ocsp/<request>: the path is a whole base64 request; the template says enough.
    path = route if route == OCSP_GET_ROUTE else scrub(environ.get("PATH_INFO", "")[:256])
    fields = {"request_id": rid, "method": environ.get("REQUEST_METHOD", "")[:16], "route": route, "path": path,
              "status": int(status) if status.isdigit() else status, "duration_ms": round(seconds * 1000, 3),
              "bytes": sum(map(len, body)), "remote_addr": environ.get("REMOTE_ADDR")}
    if _batch is not None:
        _batch.add(fields)
        return
    # handle(makeRecord()) rather than info(): info() also looks up the caller's frame,
    # which no JSON line holds, and that was a fifth of this line's cost (OCSP's cached path).
    access_log.handle(access_log.makeRecord(access_log.name, logging.INFO, "", 0, "request", (), None,
                                            extra={"fields": fields}))


class _AccessBatch:
    """The access lines of one turn of an event loop, written at once by udun's JSON handler.

    Why (issue 11): in `udun serve-ocsp` a line through logging's record and handler chain,
    written and flushed on its own, took ~13% of a nonced OCSP answer's throughput (bench
    ocsp_front_nonce_c8). The lines are JsonFormatter's, byte for byte (same keys, same
    order, same encoder), and go to the same handler's stream under its lock."""

    def __init__(self, handler: logging.StreamHandler[Any], schedule: Callable[[Callable[[], None]], object]) -> None:
        self.handler = handler
        self.schedule = schedule
        self.lines: list[str] = []

    def add(self, fields: dict[str, Any]) -> None:
        now = time.time()
        line = _encode({"timestamp": _timestamp(now, (now - int(now)) * 1000), "level": "INFO",
                        "logger": access_log.name, "message": "request", "pid": _pid, **fields})
        if not self.lines:
            self.schedule(self.flush)
        self.lines.append(line)
        if len(self.lines) >= ACCESS_BATCH_MAX:
            self.flush()

    def flush(self) -> None:
        if not self.lines:
            return
        lines, self.lines = self.lines, []
        h = self.handler
        h.acquire()
        try:
            if h.stream is None:                       # a FileHandler closed: emit() opens it again
                h.stream = h._open()  # type: ignore[attr-defined]
            # Writes of at most PIPE_BUF octets, each flushed on its own: on a pipe or socket
            # (journald, a container's stdout) shared by the workers a larger write may be
            # interleaved with another worker's mid-line; up to PIPE_BUF it is whole (POSIX).
            chunk: list[str] = []
            size = 0
            for line in lines:
                # A line with other than ASCII (a path, say) goes alone: its encoded size
                # depends on the stream's encoding.
                n = len(line) + 1 if line.isascii() else _WRITE_MAX
                if chunk and size + n > _WRITE_MAX:
                    h.stream.write("\n".join(chunk) + "\n")
                    h.stream.flush()
                    chunk, size = [], 0
                chunk.append(line)
                size += n
            h.stream.write("\n".join(chunk) + "\n")
            h.stream.flush()
        except (OSError, ValueError):
            pass                                       # as logging's handleError: a log write never fails a request
        finally:
            h.release()


ACCESS_BATCH_MAX = 256
_WRITE_MAX = 4096          # octets a write, PIPE_BUF on Linux (POSIX: at least 512)
_batch: _AccessBatch | None = None
_pid = os.getpid()
os.register_at_fork(after_in_child=lambda: globals().update(_pid=os.getpid()))


def batch_access_lines(schedule: Callable[[Callable[[], None]], object]) -> bool:
    """From now on this process writes its access lines a batch at a time: ``schedule`` (an
    event loop's call_soon) runs the write after the current turn of the loop. Only where
    the lines would go straight to udun's JSON handler on the root logger (configure_logging's
    set-up, no other handler or filter on the way): else lines keep going through logging.
    True when batching is on; ``flush_access_lines`` writes what is pending (at exit)."""
    global _batch
    root = logging.getLogger()
    ours = [h for h in root.handlers if hasattr(h, "_udun_target")]
    plain = all(not lg.handlers and not lg.filters and lg.propagate
                for lg in (access_log, logging.getLogger("udun")))
    if (len(ours) != 1 or len(root.handlers) != 1 or not plain or root.filters or access_log.disabled
            or not isinstance(ours[0], logging.StreamHandler) or ours[0].level > logging.INFO
            or not access_log.isEnabledFor(logging.INFO)):
        return False
    _batch = _AccessBatch(ours[0], schedule)
    return True


def flush_access_lines() -> None:
    if _batch is not None:
        _batch.flush()


# --- logs -----------------------------------------------------------------------------------

_redacted: set[str] = set()          # literal secrets this process knows (the admin API key)
# 12 or more digits, maybe grouped by spaces or hyphens (a card or account number), or a
# credential after its HTTP scheme: one pass over the text.
_SUSPECT = re.compile(r"""(?P<digits>\d(?:[ -]?\d){11,})|(?i:\b(?P<scheme>bearer|basic)\s+[^\s,;)\]"']+)""")


def _masked(m: re.Match[str]) -> str:
    digits = m.group("digits")
    return "****" + digits[-4:] if digits else m.group("scheme") + " [redacted]"


# A bank API key (ca.banks), an operator's API token or session (ca.operators) wherever it
# appears: its id stays (what an operator looks up).
_BANK_KEY = re.compile(r"\b(udun(?:op|sess)?_[0-9a-f]{16,32})_[A-Za-z0-9_-]{43}")


def scrub(text: str) -> str:
    """``text`` without known secrets, bank keys, operator tokens, credentials after Bearer/Basic, and with
    long digit runs masked."""
    for secret in _redacted:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    if "udun_" in text or "udunop_" in text or "udunsess_" in text:
        text = _BANK_KEY.sub(r"\1_[redacted]", text)
    return _SUSPECT.sub(_masked, text)


_encode = json.JSONEncoder(ensure_ascii=False, default=str, check_circular=False).encode  # once, not a call
_second: tuple[int, str] = (-1, "")                                   # the last whole second, formatted


def _timestamp(created: float, msecs: float) -> str:
    """RFC 3339 UTC with milliseconds; strftime once a second (a log line a request)."""
    global _second
    whole = int(created)
    if _second[0] != whole:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{int(msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: timestamp (UTC, RFC 3339), level, logger, message, pid,
    request_id (within a request) and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"timestamp": _timestamp(record.created, record.msecs), "level": record.levelname,
                               "logger": record.name, "message": scrub(record.getMessage()),
                               "pid": record.process}
        rid = _request_id.get()
        if rid is not None:
            out["request_id"] = rid
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = record.exc_info[0].__name__       # the type only: a traceback may hold data
        return _encode(out)


def json_handler(target: str = "-") -> logging.Handler:
    """JSON lines appended to the file ``target``, or to stderr for "-" (also a logging.config factory)."""
    try:
        handler: logging.Handler = logging.StreamHandler(sys.stderr) if target == "-" else \
            logging.FileHandler(target, "a", encoding="utf-8")
    except OSError as e:
        raise PkiError(ErrorKind.BAD_INPUT, f"UDUN_LOG_FILE {target} cannot be opened: {e.strerror or e}") from e
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_ours_or_warning)
    handler._udun_target = target  # type: ignore[attr-defined]
    return handler


def _ours_or_warning(record: logging.LogRecord) -> bool:
    """udun's and gunicorn's lines at their levels, other libraries' only from WARNING: a
    root logger turned down to DEBUG (pytest's caplog does) must not bring in, say,
    SQLAlchemy's statements with their parameters (payments)."""
    return record.levelno >= logging.WARNING or record.name.startswith(("udun", "gunicorn."))


def configure_logging(settings: Settings, redact: Iterable[str | None] = ()) -> None:
    """One JSON handler on the root logger (UDUN_LOG_FILE or stderr), udun's loggers at
    UDUN_LOG_LEVEL; others at their own level (WARNING by default). Idempotent: a second
    app factory in the process (tests), or the handler gunicorn_logconfig made in the
    arbiter, is reused, not doubled."""
    target = settings.log_file or "-"
    root = logging.getLogger()
    ours = [h for h in root.handlers if hasattr(h, "_udun_target")]
    if not any(h._udun_target == target for h in ours):  # type: ignore[attr-defined]
        handler = json_handler(target)
        for old in ours:
            root.removeHandler(old)
            old.close()
        root.addHandler(handler)
    udun = logging.getLogger("udun")
    udun.setLevel(settings.log_level)
    udun.propagate = True
    _redacted.update(s for s in redact if s)


def gunicorn_logconfig(settings: Settings) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict`` for udun/server.py: gunicorn's own error log as the
    same JSON lines on the same target (the root handler, which the workers' app
    factories then reuse), its access log off (Observed writes one line per request)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"udun": {"()": json_handler, "target": settings.log_file or "-"},
                     "off": {"class": "logging.NullHandler"}},
        "root": {"level": "WARNING", "handlers": ["udun"]},
        # No level here: gunicorn's ``loglevel`` setting stays in force.
        "loggers": {"gunicorn.error": {"handlers": [], "propagate": True},
                    "gunicorn.access": {"handlers": ["off"], "propagate": False}},
    }
