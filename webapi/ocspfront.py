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
(the answer, its caching headers), so both servers answer byte for byte alike. Anything but
POST /ocsp, GET /ocsp/{request} and GET /healthz is a 404.

Limits (a client cannot hold memory or a connection for long): request line and headers
16 KiB, body 64 KiB (above: answered as an empty request, like the WSGI path), no chunked
bodies (411), 100 requests per connection (then Connection: close), 15 s idle.
"""
from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import sys
from typing import Any, Callable, Iterable

import httptools

from webapi import observability as obs
from webapi.ocsp_wsgi import MAX_BODY, OcspFastPath

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
    """What OcspFastPath hands on: /healthz (liveness), else 404."""
    if environ["PATH_INFO"] == "/healthz" and environ["REQUEST_METHOD"] == "GET":
        environ[obs.ROUTE] = "/healthz"
        body = b'{"status":"ok"}'
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-store")])
        return [body]
    body = _problem(404, "not-found", "this server answers OCSP only: POST /ocsp, GET /ocsp/{request}")
    start_response("404 Not Found", [("Content-Type", "application/problem+json"),
                                     ("Content-Length", str(len(body)))])
    return [body]


def make_app(responder: Any) -> WsgiApp:
    """The WSGI app this front serves (tests give it a Responder of their own)."""
    return obs.Observed(OcspFastPath(_not_here, lambda: responder))


class _Connection(asyncio.Protocol):
    """One client connection: requests parsed as they come, answered in order."""

    def __init__(self, app: WsgiApp, port: int) -> None:
        self.app = app
        self.port = str(port)
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.served = 0
        self.idle: asyncio.TimerHandle | None = None
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        self.body = bytearray()
        self.too_big = False
        self.chunked = False

    # --- asyncio ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.remote = str(peer[0]) if peer else ""
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        self._arm()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "bad-input", "no protocol upgrades here")
        except httptools.HttpParserError:
            if self.head_size > MAX_HEAD:
                self._refuse(431, "too-large", f"the request line and headers are over {MAX_HEAD} bytes")
            else:
                self._refuse(400, "bad-input", "not an HTTP/1.1 request")

    def _arm(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.idle = asyncio.get_running_loop().call_later(IDLE_SECONDS, self._close)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None            # requests still in this read are not answered

    # --- httptools callbacks ----------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self._count(len(name) + len(value) + 4)
        if name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
            self.chunked = True

    def _count(self, size: int) -> None:
        self.head_size += size
        if self.head_size > MAX_HEAD:
            raise httptools.HttpParserError("headers too large")

    def on_body(self, body: bytes) -> None:
        if self.too_big or self.chunked:
            return
        if len(self.body) + len(body) > MAX_BODY:
            self.too_big, self.body = True, bytearray()      # answered as an empty request
            return
        self.body += body

    def on_message_complete(self) -> None:
        if self.transport is None:
            return
        if self.chunked:
            self._refuse(411, "length-required", "send the request with Content-Length, not chunked")
            return
        self.served += 1
        keep = self.parser.should_keep_alive() and self.served < MAX_REQUESTS
        status, headers, body = self._call()
        head = [f"HTTP/1.1 {status}\r\n".encode()]
        head += [f"{k}: {v}\r\n".encode("latin-1") for k, v in headers]
        head.append(b"\r\n" if keep else b"Connection: close\r\n\r\n")
        self.transport.write(b"".join(head) + body)
        self._reset()
        if not keep:
            self._close()

    # --- the WSGI call ----------------------------------------------------------------

    def _call(self) -> tuple[str, list[tuple[str, str]], bytes]:
        parsed = httptools.parse_url(self.url)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.parser.get_method().decode("latin-1"),
            "PATH_INFO": parsed.path.decode("latin-1"),
            "QUERY_STRING": (parsed.query or b"").decode("latin-1"),
            "SERVER_NAME": "udun", "SERVER_PORT": self.port, "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": self.remote, "CONTENT_LENGTH": str(len(self.body)),
            "wsgi.input": io.BytesIO(bytes(self.body)), "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
        }
        for name, value in self.headers:
            key = name.decode("latin-1").upper().replace("-", "_")
            if key not in ("CONTENT_LENGTH", "CONTENT_TYPE"):
                key = "HTTP_" + key
            environ[key] = value.decode("latin-1")
        answer: list[Any] = ["500 Internal Server Error", []]

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            answer[0], answer[1] = status, headers

        try:
            body = b"".join(self.app(environ, start_response))
        except Exception:  # noqa: BLE001  never a traceback to the client
            body = _problem(500, "internal", "the server failed; the error was logged")
            answer[:] = ["500 Internal Server Error", [("Content-Type", "application/problem+json"),
                                                      ("Content-Length", str(len(body)))]]
        return answer[0], answer[1], body

    def _refuse(self, status: int, code: str, detail: str) -> None:
        """An answer to what cannot be parsed or served; the connection ends."""
        if self.transport is None:
            return
        body = _problem(status, code, detail)
        self.transport.write(f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/problem+json\r\n"
                             f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        self._close()


def listen(host: str, port: int) -> socket.socket:
    """A listening socket that other processes may bind too (SO_REUSEPORT)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def run_worker(host: str, port: int, make: Callable[[], WsgiApp]) -> None:
    """One process: its own socket on the shared port, its own app (PKCS#11 after fork)."""
    app = make()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop: asyncio.Future[None] = loop.create_future()

        def done() -> None:
            if not stop.done():
                stop.set_result(None)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, done)
        server = await loop.create_server(lambda: _Connection(app, port), sock=listen(host, port))
        async with server:
            await stop

    asyncio.run(main())


def run(host: str, port: int, workers: int, make: Callable[[], WsgiApp]) -> None:
    """``workers`` processes (forked; each makes its app after the fork); SIGTERM or SIGINT
    stops them all; a worker that dies takes the others down (a supervisor restarts it all)."""
    listen(host, port).close()              # a taken port fails here, once, before any fork
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                run_worker(host, port, make)
            except BaseException:  # noqa: BLE001  the reason is logged; the parent ends the rest
                import logging
                logging.getLogger("udun.ocspfront").exception("OCSP worker failed")
                code = 1
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    while children:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        if pid in children:
            children.remove(pid)
            if code != 0 and children:
                status = 1
                forward(signal.SIGTERM, None)
    sys.exit(status)
