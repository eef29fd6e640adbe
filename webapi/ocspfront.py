"""`udun serve-ocsp`: OCSP (RFC 6960 / RFC 5019) on a keep-alive HTTP/1.1 front.

The bank-facing server answers one request per connection (gunicorn sync workers: a
python-pkcs11 session must not be shared by threads), which costs an OCSP client a TCP
handshake per answer and caps cached answers at a few thousand a second here. OCSP is the
busiest thing a CA serves and its answers are small, so this front serves only it: one
asyncio event loop per process (single-threaded: the token session is never shared),
connections kept alive, several processes on one port (SO_REUSEPORT: the kernel spreads
connections over them). HTTP parsing is httptools (llhttp, Node.js's parser).

Each request goes through the same WSGI path as under gunicorn: webapi.observability's
Observed (request id, metrics, the JSON access line) around webapi.ocsp_wsgi's OcspFastPath
(the answer, its caching headers), so both servers answer byte for byte alike. What one
turn of the loop reads is answered at the start of the next, together: the nonced OCSP
requests signed in a row (ca.ocsp.Responder.batch), the access lines written at once
(observability.batch_access_lines). Anything but POST /ocsp, GET /ocsp/{request},
GET /healthz and GET /metrics (Prometheus, every worker's counts: udun.server.MetricsDir)
is a 404.

Limits (a client cannot hold memory or a connection for long): request line and headers
16 KiB, body 64 KiB (above: answered as an empty request, like the WSGI path), no chunked
bodies (411), 100 requests per connection (then Connection: close), 15 s idle.
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import unquote_to_bytes

import httptools

from pkicore.errors import ErrorKind, PkiError
from webapi import observability as obs
from webapi.ocsp_wsgi import MAX_BODY, OcspFastPath

_log = logging.getLogger("udun.ocspfront")
MAX_HEAD = 16 * 1024
MAX_REQUESTS = 100
IDLE_SECONDS = 15.0
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 411: "Length Required", 413: "Payload Too Large",
            431: "Request Header Fields Too Large", 500: "Internal Server Error"}


def _problem(status: int, code: str, detail: str) -> bytes:
    return json.dumps({"type": f"urn:udun:problem:{code}", "code": code, "title": _REASONS[status].lower(),
                       "status": status, "detail": detail}).encode()


def _not_here(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """What OcspFastPath hands on: /healthz (liveness), /metrics (every worker's), else 404."""
    if environ["PATH_INFO"] == "/healthz" and environ["REQUEST_METHOD"] == "GET":
        environ[obs.ROUTE] = "/healthz"
        body = b'{"status":"ok"}'
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-store")])
        return [body]
    if environ["PATH_INFO"] == "/metrics" and environ["REQUEST_METHOD"] == "GET":
        environ[obs.ROUTE] = "/metrics"
        body, media_type = obs.metrics_body()
        start_response("200 OK", [("Content-Type", media_type), ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-store")])
        return [body]
    body = _problem(404, "not-found", "this server answers OCSP only: POST /ocsp, GET /ocsp/{request} "
                                      "(and GET /healthz, GET /metrics)")
    start_response("404 Not Found", [("Content-Type", "application/problem+json"),
                                     ("Content-Length", str(len(body)))])
    return [body]


@dataclass(frozen=True)
class Front:
    """What one worker serves: the WSGI app, and how it answers several requests at once."""

    app: WsgiApp
    batch: Callable[[Sequence[bytes]], contextlib.AbstractContextManager[None]]


def make_app(responder: Any) -> Front:
    """The app this front serves over a ca.ocsp.Responder (tests give it one of their own)."""
    return Front(obs.Observed(OcspFastPath(_not_here, lambda: responder)), responder.batch)


@dataclass(frozen=True)
class _Raw:
    """Bytes written as they are: a refusal (then the connection ends) or 100 Continue."""

    data: bytes
    close: bool


@dataclass(frozen=True)
class _Request:
    """One request as read: answered in the next turn of the loop."""

    version: str
    method: bytes
    url: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep: bool


class _Turn:
    """The requests of one turn of the loop, answered together at the start of the next.

    Why (issue 11): the nonced OCSP requests among them are signed in a row (Responder.batch);
    ocsp_front_nonce_c8 went from 4,628 to 6,420 resp/s. Answers on a connection stay in their order:
    everything a connection answers while it has requests waiting (a refusal too) waits
    behind them.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 batch: Callable[[Sequence[bytes]], contextlib.AbstractContextManager[None]]) -> None:
        self.loop = loop
        self.batch = batch
        self.items: list[tuple[_Connection, _Request | _Raw]] = []

    def add(self, conn: _Connection, item: _Request | _Raw) -> None:
        if not self.items:
            self.loop.call_soon(self.run)
        self.items.append((conn, item))
        conn.queued += 1

    def run(self) -> None:
        items, self.items = self.items, []
        bodies = [i.body for c, i in items if isinstance(i, _Request) and c.transport is not None
                  and i.method == b"POST" and i.body and i.url.split(b"?", 1)[0] == b"/ocsp"]
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(self.batch(bodies))
            except Exception:  # noqa: BLE001  each request is then answered on its own
                _log.exception("answering a turn together failed")
            for conn, item in items:
                conn.queued -= 1
                try:
                    conn.deliver(item)
                except Exception:  # noqa: BLE001  one connection's failure is not the others'
                    _log.exception("an answer of the OCSP front failed")
                    conn._close()


class _Connection(asyncio.Protocol):
    """One client connection: requests parsed as they come, answered in order.

    One deadline per request, not reset by reads: a request (head and body) must arrive
    within IDLE_SECONDS of the connection or of the previous answer, however slowly it is
    sent. The head is counted as it arrives (httptools hands a header over only once it is
    complete), so a client cannot grow one without bound.
    """

    def __init__(self, app: WsgiApp, port: int, turn: _Turn | None = None) -> None:
        self.app = app
        self.port = str(port)
        self.turn = turn                      # None: each request answered as soon as it is read
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.served = 0
        self.queued = 0                       # requests (or a refusal) of this connection in the turn
        self.closing = False                  # the last answer is decided: read nothing more
        self.deadline: asyncio.TimerHandle | None = None
        self.in_head = True                   # between a message's start and its headers' end
        self.head_bytes = 0
        self.answered_early = False           # this message was answered before its body came
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self.too_big = False

    # --- asyncio ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.remote = str(peer[0]) if peer else ""
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.closing:
            return
        if self.in_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "bad-input", "no protocol upgrades here")
        except httptools.HttpParserError:
            self._refuse(400, "bad-input", "not an HTTP/1.1 request")
        if self.transport is not None and not self.closing and self.in_head and self.head_bytes > MAX_HEAD:
            self._refuse(431, "too-large", f"the request line and headers are over {MAX_HEAD} bytes")

    def _arm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline = asyncio.get_running_loop().call_later(IDLE_SECONDS, self._close)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None            # requests still in this read are not answered

    # --- httptools callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        self.in_head, self.head_bytes, self.answered_early = True, 0, False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self.transport is None or self.closing:
            return
        if len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers) > MAX_HEAD:
            self._refuse(431, "too-large", f"the request line and headers are over {MAX_HEAD} bytes")
            return
        if self.parser.should_upgrade():
            self._refuse(400, "bad-input", "no protocol upgrades here")
            return
        fields = {name.lower(): value for name, value in self.headers}
        if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
            self._refuse(411, "length-required", "send the request with Content-Length, not chunked")
            return
        length = fields.get(b"content-length", b"0").strip()
        if not length.isdigit():
            self._refuse(400, "bad-input", "Content-Length is not a number")
            return
        if int(length) > MAX_BODY:
            # Answered as an empty request (as under gunicorn), without reading the body:
            # then the connection ends.
            self.too_big, self.answered_early = True, True
            self._answer(keep=False)
            return
        if fields.get(b"expect", b"").lower() == b"100-continue":
            self._send(_Raw(b"HTTP/1.1 100 Continue\r\n\r\n", close=False))

    def on_body(self, body: bytes) -> None:
        if not self.too_big:
            self.body += body

    def on_message_complete(self) -> None:
        if self.transport is None or self.answered_early or self.closing:
            return
        self.served += 1
        self._answer(keep=self.parser.should_keep_alive() and self.served < MAX_REQUESTS)

    def _answer(self, keep: bool) -> None:
        """The request just read, answered now or in the next turn (after those before it)."""
        req = _Request(self.parser.get_http_version(), self.parser.get_method(), self.url, self.headers,
                       b"" if self.too_big else bytes(self.body), keep)
        self._reset()
        if not keep:
            self.closing = True
        if self.deadline is not None:
            # Read in full: no deadline while it waits (a deadline due in this very turn
            # would close the connection unanswered); deliver() arms the next one.
            self.deadline.cancel()
            self.deadline = None
        if self.turn is None:
            self.deliver(req)
        else:
            self.turn.add(self, req)

    def _send(self, item: _Raw) -> None:
        """Bytes to write now, or behind this connection's answers still waiting."""
        if self.queued and self.turn is not None:
            self.turn.add(self, item)
        else:
            self.deliver(item)

    def deliver(self, item: _Request | _Raw) -> None:
        """Write an answer, a refusal (after which the connection ends) or 100 Continue."""
        if self.transport is None:
            return
        if isinstance(item, _Raw):
            self.transport.write(item.data)
            if item.close:
                self._close()
            elif not self.queued and self.deadline is None:
                self._arm()                              # the deadline of the request it continues
            return
        status, headers, body = self._call(item)
        head = [f"HTTP/1.1 {status}\r\n".encode()]
        head += [f"{k}: {v}\r\n".encode("latin-1") for k, v in headers]
        if not item.keep:
            head.append(b"Connection: close\r\n")
        elif item.version == "1.0":                      # HTTP/1.0 closes unless told otherwise
            head.append(b"Connection: keep-alive\r\n")
        head.append(b"\r\n")
        self.transport.write(b"".join(head) + (b"" if item.method == b"HEAD" else body))
        if item.keep:
            if not self.queued:
                self._arm()                              # the next request's deadline
        else:
            self._close()

    # --- the WSGI call ----------------------------------------------------------------

    def _call(self, req: _Request) -> tuple[str, list[tuple[str, str]], bytes]:
        version, method, body = req.version, req.method, req.body
        try:
            parsed = httptools.parse_url(req.url)
            path, query = unquote_to_bytes(parsed.path or b"/"), parsed.query or b""
        except httptools.HttpParserInvalidURLError:
            path, query = b"/", b""
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method.decode("latin-1"), "SCRIPT_NAME": "",
            "PATH_INFO": path.decode("latin-1"),          # PEP 3333: bytes as latin-1, as gunicorn
            "QUERY_STRING": query.decode("latin-1"),
            "SERVER_NAME": "udun", "SERVER_PORT": self.port, "SERVER_PROTOCOL": f"HTTP/{version}",
            "REMOTE_ADDR": self.remote,
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
        }
        for name, value in req.headers:
            text = name.decode("latin-1")
            if "_" in text:                               # as gunicorn: X_Foo would pass for X-Foo
                continue
            key = text.upper().replace("-", "_")
            if key in ("CONTENT_LENGTH", "CONTENT_TYPE"):
                environ[key] = value.decode("latin-1")
                continue
            key = "HTTP_" + key
            new = value.decode("latin-1")
            environ[key] = f"{environ[key]},{new}" if key in environ else new
        environ["CONTENT_LENGTH"] = str(len(body))        # what was read, whatever the header said
        answer: list[Any] = ["500 Internal Server Error", []]

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            answer[0], answer[1] = status, headers

        try:
            out = b"".join(self.app(environ, start_response))
        except Exception:  # noqa: BLE001  never a traceback to the client
            _log.exception("the OCSP front's app failed")
            out = _problem(500, "internal", "the server failed; the error was logged")
            answer[:] = ["500 Internal Server Error", [("Content-Type", "application/problem+json"),
                                                      ("Content-Length", str(len(out)))]]
        return answer[0], answer[1], out

    def _refuse(self, status: int, code: str, detail: str) -> None:
        """An answer to what cannot be parsed or served, after those still waiting; the connection ends."""
        if self.transport is None or self.closing:
            return
        self.closing = True
        body = _problem(status, code, detail)
        answer = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/problem+json\r\n"
                  f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        self._send(_Raw(answer, close=True))


def listen(host: str, port: int) -> socket.socket:
    """A listening socket that other processes may bind too (SO_REUSEPORT)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
STOP_GRACE_SECONDS = 30


def _die_with_parent() -> None:
    """Linux: this worker gets SIGTERM when the parent dies, however it dies (SIGKILL, OOM):
    no orphaned worker keeps the port (SO_REUSEPORT would let a restarted set bind beside it)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_worker(host: str, port: int, make: Callable[[], Front]) -> None:
    """One process: its own socket on the shared port, its own app (PKCS#11 after fork).
    SIGTERM and SIGINT are blocked on entry (run() forks with them blocked) and unblocked
    once the loop handles them."""
    front = make()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop: asyncio.Future[None] = loop.create_future()

        def done() -> None:
            if not stop.done():
                stop.set_result(None)

        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, done)
        obs.batch_access_lines(loop.call_soon)          # one log write per turn of the loop
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        turn = _Turn(loop, front.batch)
        server = await loop.create_server(lambda: _Connection(front.app, port, turn), sock=listen(host, port))
        async with server:
            await stop

    try:
        asyncio.run(main())
    finally:
        obs.flush_access_lines()


def run(host: str, port: int, workers: int, make: Callable[[], Front]) -> None:
    """``workers`` processes (forked; each makes its app after the fork). SIGTERM or SIGINT
    stops them all (SIGKILL after STOP_GRACE_SECONDS). A worker that ends when it was not
    asked to takes the others down and the exit status is 1, so that a supervisor
    (systemd Restart=on-failure) starts the whole set again."""
    try:
        listen(host, port).close()          # a taken port fails here, once, before any fork
    except OSError as e:
        raise PkiError(ErrorKind.CONFLICT, f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    parent = os.getpid()
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)    # no signal between the forks
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _die_with_parent()
                if os.getppid() != parent:     # the parent died before the line above
                    os._exit(1)
                run_worker(host, port, make)
            except BaseException:  # noqa: BLE001  the reason is logged; the parent ends the rest
                _log.exception("OCSP worker failed")
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    stopping = False

    def signal_all(sig: int) -> None:
        for child in children:
            try:
                os.kill(child, sig)
            except ProcessLookupError:
                pass

    def stop(_signum: int = 0, _frame: object = None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            signal_all(signal.SIGTERM)
            signal.alarm(STOP_GRACE_SECONDS)

    for sig in _STOP_SIGNALS:
        signal.signal(sig, stop)
    signal.signal(signal.SIGALRM, lambda _s, _f: signal_all(signal.SIGKILL))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    status = 0
    while children:
        try:
            pid, _code = os.wait()
        except ChildProcessError:
            break
        if pid in children:
            children.remove(pid)
            if not stopping:                    # nobody asked it to end
                status = 1
                stop()
    sys.exit(status)
