"""`udun serve-ocsp` (webapi.ocspfront): OCSP on a keep-alive HTTP/1.1 front, two worker
processes on one port. The answers are the bank-facing server's (same WSGI path), kept
alive over one connection, checked by `openssl ocsp`; what the front cannot take is a clean
HTTP error, never a hang; a hold made on the CA is answered on the next request; SIGTERM
stops every worker."""
from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from asn1crypto import ocsp, x509

from helpers import openssl, running_server, software_csr, stop_process
from pkicore.ocsp import build_request


@pytest.fixture(scope="module")
def front(home: Path, ca) -> Iterator[tuple[str, int, object]]:  # type: ignore[no-untyped-def]
    ca.issuer()                                    # the CA is initialised before the server starts
    with running_server(home, command="serve-ocsp") as (base, proc):
        parts = urlsplit(base)
        yield parts.hostname or "127.0.0.1", parts.port or 80, proc


def _cert(ca, admin_client) -> x509.Certificate:  # type: ignore[no-untyped-def]
    resp = admin_client.post("/api/v1/certificates", data=software_csr(f"front-{os.urandom(5).hex()}"),
                             headers={"Authorization": "Bearer udun-test-admin-key-0123456789abcdef"})
    assert resp.status_code == 201, resp.get_json()
    return x509.Certificate.load(ca.get(resp.get_json()["serial"]).der)


def _status(der: bytes) -> tuple[str, str | None]:
    answer = ocsp.OCSPResponse.load(der)
    status = answer["response_status"].native
    if status != "successful":
        return status, None
    single = answer.basic_ocsp_response["tbs_response_data"]["responses"][0]
    return status, single["cert_status"].name


def test_answers_over_one_kept_connection(front, ca, admin_client) -> None:  # type: ignore[no-untyped-def]
    host, port, _ = front
    cert, issuer = _cert(ca, admin_client), x509.Certificate.load(ca.chain_der()[0])
    cached, nonced = build_request(cert, issuer), build_request(cert, issuer, os.urandom(16))
    conn = http.client.HTTPConnection(host, port, timeout=10)
    sockets = set()
    for i in range(6):
        body = cached if i % 2 == 0 else nonced
        conn.request("POST", "/ocsp", body=body, headers={"Content-Type": "application/ocsp-request",
                                                           "X-Request-ID": f"front-test-{i:04d}"})
        resp = conn.getresponse()
        data = resp.read()
        sockets.add(id(conn.sock))
        assert resp.status == 200 and resp.getheader("Content-Type") == "application/ocsp-response"
        assert resp.getheader("X-Request-ID") == f"front-test-{i:04d}"
        assert _status(data) == ("successful", "good"), i
        assert resp.getheader("Connection") != "close"
        if body is nonced:
            assert resp.getheader("Cache-Control") == "no-store"
    assert len(sockets) == 1 and conn.sock is not None            # one TCP connection for all six
    get = "/ocsp/" + quote(base64.b64encode(cached).decode(), safe="")
    conn.request("GET", get)
    resp = conn.getresponse()
    assert resp.status == 200 and _status(resp.read()) == ("successful", "good")
    assert resp.getheader("Cache-Control").startswith("public, max-age=") and resp.getheader("ETag")
    conn.request("GET", "/healthz", headers={"Connection": "close"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b'{"status":"ok"}' and resp.getheader("Connection") == "close"
    conn.close()
    # One access line a request, written by the worker a turn of its loop at a time.
    wanted = {f"front-test-{i:04d}" for i in range(6)}
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in Path(os.environ["UDUN_LOG_FILE"]).read_text("utf-8").splitlines()]
        mine = [e for e in lines if e.get("request_id") in wanted and e["logger"] == "udun.access"]
        if len(mine) >= len(wanted) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert sorted(e["request_id"] for e in mine) == sorted(wanted)
    assert {(e["route"], e["status"], e["method"]) for e in mine} == {("/ocsp", 200, "POST")}
    assert all(e["pid"] != os.getpid() and e["bytes"] > 0 for e in mine)


def test_openssl_ocsp_accepts_the_answer(front, ca, admin_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from asn1crypto import pem

    host, port, _ = front
    cert = _cert(ca, admin_client)
    (tmp_path / "cert.pem").write_bytes(pem.armor("CERTIFICATE", cert.dump()))
    (tmp_path / "issuer.pem").write_bytes(pem.armor("CERTIFICATE", ca.chain_der()[0]))
    (tmp_path / "chain.pem").write_bytes(b"".join(pem.armor("CERTIFICATE", d) for d in ca.chain_der()))
    out = openssl("ocsp", "-issuer", str(tmp_path / "issuer.pem"), "-cert", str(tmp_path / "cert.pem"),
                  "-url", f"http://{host}:{port}/ocsp", "-CAfile", str(tmp_path / "chain.pem"))
    assert out.returncode == 0, out.stderr
    assert b"Response verify OK" in out.stderr + out.stdout and b": good" in out.stdout


def test_a_hold_is_answered_on_the_next_request(front, ca, admin_client) -> None:  # type: ignore[no-untyped-def]
    from ca.revocation import Revocation

    host, port, _ = front
    cert, issuer = _cert(ca, admin_client), x509.Certificate.load(ca.chain_der()[0])
    request = build_request(cert, issuer)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    for _ in range(3):                                    # both workers have it cached by now, likely
        conn.request("POST", "/ocsp", body=request)
        assert _status(conn.getresponse().read()) == ("successful", "good")
    Revocation(ca).hold(format(cert.serial_number, "x"), actor="test")
    for _ in range(4):                                    # whichever worker answers: the new status
        fresh = http.client.HTTPConnection(host, port, timeout=10)
        fresh.request("POST", "/ocsp", body=request)
        assert _status(fresh.getresponse().read()) == ("successful", "revoked")
        fresh.close()
    conn.request("POST", "/ocsp", body=request)            # the kept connection too
    assert _status(conn.getresponse().read()) == ("successful", "revoked")
    conn.close()


def _raw(host: str, port: int, data: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_what_the_front_cannot_take(front) -> None:  # type: ignore[no-untyped-def]
    host, port, _ = front
    assert _raw(host, port, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    chunked = _raw(host, port, b"POST /ocsp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                               b"5\r\nhello\r\n0\r\n\r\n")
    assert chunked.startswith(b"HTTP/1.1 411 ") and b"length-required" in chunked
    huge = _raw(host, port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
    assert huge.startswith(b"HTTP/1.1 431 ")
    other = _raw(host, port, b"POST /api/v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                             b"Connection: close\r\n\r\n{}")
    assert other.startswith(b"HTTP/1.1 404 ") and b"application/problem+json" in other
    big = b"x" * (70 * 1024)                              # over 64 KiB: answered as an empty request
    answer = _raw(host, port, b"POST /ocsp HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: "
                              + str(len(big)).encode() + b"\r\n\r\n" + big)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert _status(answer.split(b"\r\n\r\n", 1)[1]) == ("malformed_request", None)
    junk = _raw(host, port, b"POST /ocsp HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 4\r\n\r\njunk")
    assert _status(junk.split(b"\r\n\r\n", 1)[1]) == ("malformed_request", None)
    # A client that opens a connection and says nothing holds nothing for long: the server
    # still answers others meanwhile.
    with socket.create_connection((host, port), timeout=10):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()


def test_sigterm_stops_every_worker(home: Path, ca) -> None:  # type: ignore[no-untyped-def]
    with running_server(home, command="serve-ocsp") as (_base, proc):
        children = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        assert len(children) == 2
        stop_process(proc)
        assert proc.returncode == 0
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{c}").exists() and "zombie" not in Path(f"/proc/{c}/status").read_text().lower()
                  for c in children):
            assert time.monotonic() < deadline, "a worker outlived its parent"
            time.sleep(0.1)


def test_pipelined_requests_are_answered_in_order(front) -> None:  # type: ignore[no-untyped-def]
    host, port, _ = front
    two = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: pipelined-0001\r\n\r\n"
           b"GET /nowhere HTTP/1.1\r\nHost: x\r\nX-Request-ID: pipelined-0002\r\nConnection: close\r\n\r\n")
    answer = _raw(host, port, two)
    first, second = answer.index(b"HTTP/1.1 200 "), answer.index(b"HTTP/1.1 404 ")
    assert first == 0 and second > first
    assert answer.index(b"pipelined-0001") < second < answer.index(b"pipelined-0002")


def test_pipelined_ocsp_answers_keep_their_order(front, ca, admin_client) -> None:  # type: ignore[no-untyped-def]
    """Requests read in one turn are answered together (nonced ones signed in a row), each
    connection's answers in the order asked, a refusal after the answers before it."""
    host, port, _ = front
    cert, issuer = _cert(ca, admin_client), x509.Certificate.load(ca.chain_der()[0])
    nonces = [os.urandom(16) for _ in range(4)]
    bodies = [build_request(cert, issuer, n) for n in nonces[:2]] + [build_request(cert, issuer)] + \
        [build_request(cert, issuer, n) for n in nonces[2:]]
    wire = b"".join(b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(b) + b for b in bodies)
    answer = _raw(host, port, wire + b"NOT HTTP\r\n\r\n")
    statuses, echoed = [], []
    while answer:
        head, rest = answer.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        length = int(next(v for k, _, v in (line.partition(b":") for line in lines[1:]) if k.lower() == b"content-length"))
        body, answer = rest[:length], rest[length:]
        statuses.append(lines[0][len(b"HTTP/1.1 "):][:3])
        if statuses[-1] == b"200":
            assert _status(body) == ("successful", "good")
            resp = ocsp.OCSPResponse.load(body)
            echoed.append(resp.nonce_value.native if resp.nonce_value is not None else None)
    assert statuses == [b"200"] * 5 + [b"400"]
    assert echoed == [nonces[0], nonces[1], None, nonces[2], nonces[3]]


def test_a_client_cannot_grow_or_garble_a_connection(front) -> None:  # type: ignore[no-untyped-def]
    """A header that never ends is cut at 16 KiB (431); a body over 64 KiB is not read (the
    answer comes at once, then the connection ends); HEAD has no body (the next answer on
    the connection is not garbled); an Upgrade gets one answer; HTTP/1.0 keep-alive is said."""
    host, port, _ = front
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(64):                           # 2 MiB of one header, never finished
                s.sendall(b"a" * 32_768)
        except (BrokenPipeError, ConnectionResetError):
            pass                                          # the server had answered and closed
        assert s.recv(65536).startswith(b"HTTP/1.1 431 ")
    started = time.monotonic()
    answer = _raw(host, port, b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\nxx")
    assert answer.startswith(b"HTTP/1.1 200 ") and time.monotonic() - started < 5
    assert _status(answer.split(b"\r\n\r\n", 1)[1]) == ("malformed_request", None)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("HEAD", "/nowhere")
    head = conn.getresponse()
    assert head.status == 404 and head.read() == b""
    conn.request("GET", "/healthz")
    assert conn.getresponse().read() == b'{"status":"ok"}'        # not the HEAD's body
    conn.close()
    upgrade = _raw(host, port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    assert upgrade.count(b"HTTP/1.1 ") == 1 and upgrade.startswith(b"HTTP/1.1 400 ")
    old = _raw(host, port, b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /healthz HTTP/1.0\r\n\r\n")
    assert old.count(b"HTTP/1.1 200 ") == 2 and b"Connection: keep-alive" in old


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _gone(pids: list[int], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists()
                 and "(zombie)" not in Path(f"/proc/{p}/status").read_text()]
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_a_dead_worker_stops_the_set_with_status_1(home: Path, ca) -> None:  # type: ignore[no-untyped-def]
    import signal

    with running_server(home, command="serve-ocsp") as (_base, proc):
        workers = _children(proc.pid)
        os.kill(workers[0], signal.SIGKILL)
        assert proc.wait(timeout=30) == 1                 # a supervisor restarts the whole set
        assert _gone(workers)


def test_workers_end_with_their_parent(home: Path, ca) -> None:  # type: ignore[no-untyped-def]
    import signal

    with running_server(home, command="serve-ocsp") as (_base, proc):
        workers = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)                 # no chance to stop them itself
        proc.wait(timeout=30)
        assert _gone(workers), "a worker outlived its killed parent"


def test_a_taken_port_is_a_clear_error(home: Path, ca) -> None:  # type: ignore[no-untyped-def]
    from helpers import udun

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = udun("serve-ocsp", "--port", str(port), env={"UDUN_HOME": str(home)})
    err = proc.stderr.decode()
    assert proc.returncode == 2
    assert f"error [conflict]: cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


# --- the turn, in process (webapi.ocspfront._Turn over a loopback listener) ------------------

def _tiny_app(environ, start_response):  # type: ignore[no-untyped-def]
    if environ["PATH_INFO"] == "/bad":
        start_response("200 OK", [("X-Bad", "\u20ac")])         # not latin-1: writing this answer fails
        return [b"x"]
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def _in_turns(check) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import contextlib

    from webapi import ocspfront

    async def main() -> None:
        loop = asyncio.get_running_loop()
        turn = ocspfront._Turn(loop, lambda bodies: contextlib.nullcontext())
        conns: list[ocspfront._Connection] = []

        def make() -> ocspfront._Connection:
            conns.append(ocspfront._Connection(_tiny_app, 0, turn))
            return conns[-1]

        server = await loop.create_server(make, "127.0.0.1", 0)
        async with server:
            await check(server.sockets[0].getsockname()[1], conns)

    asyncio.run(main())


def test_a_request_read_as_its_deadline_falls_is_answered(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Read in the turn in which the connection's deadline is due: answered, not dropped."""
    import asyncio

    from webapi import ocspfront

    monkeypatch.setattr(ocspfront, "IDLE_SECONDS", 0.3)

    async def check(port: int, conns: list) -> None:  # type: ignore[type-arg]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            await asyncio.sleep(0.05)                       # accepted: the deadline is armed
            time.sleep(0.15)
            s.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")   # in full, before the deadline
            time.sleep(0.3)                                 # the loop busy past it (a batch being signed)
            await asyncio.sleep(0.2)
            assert s.recv(100) == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    _in_turns(check)


def test_one_failing_answer_leaves_the_turn_to_the_others() -> None:
    """An answer that cannot be written ends its own connection; the rest of the turn is
    answered, and 100 Continue behind a waiting answer still comes, after it."""
    import asyncio

    async def check(port: int, conns: list) -> None:  # type: ignore[type-arg]
        ra, wa = await asyncio.open_connection("127.0.0.1", port)
        rb, wb = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.05)
        wa.write(b"GET /bad HTTP/1.1\r\nHost: x\r\n\r\n")
        wb.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await wa.drain()
        await wb.drain()
        assert await asyncio.wait_for(ra.read(), 5) == b""                      # closed, unanswered
        assert (await asyncio.wait_for(rb.read(), 5)).count(b"HTTP/1.1 200 OK") == 2
        rc, wc = await asyncio.open_connection("127.0.0.1", port)
        wc.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        await wc.drain()
        got = b""
        while b"100 Continue" not in got:
            got += await asyncio.wait_for(rc.read(1000), 5)
        assert got.index(b"200 OK") < got.index(b"100 Continue")
        wc.write(b"abc")
        await wc.drain()
        while got.count(b"200 OK") < 2:
            got += await asyncio.wait_for(rc.read(1000), 5)
        for w in (wa, wb, wc):
            w.close()
        assert [c.queued for c in conns] == [0, 0, 0]

    _in_turns(check)


def test_metrics_sum_every_worker(front, ca, admin_client) -> None:  # type: ignore[no-untyped-def]
    """GET /metrics on serve-ocsp: the OCSP counts of both workers (connections land on
    either), one scrape after another adding up to what was asked in between."""
    from prometheus_client.parser import text_string_to_metric_families

    host, port, _ = front

    def signed() -> float:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type", "").startswith("text/plain")
        text = resp.read().decode()
        conn.close()
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == "udun_ocsp_responses_total" and s.labels.get("source") == "signed")

    cert, issuer = _cert(ca, admin_client), x509.Certificate.load(ca.chain_der()[0])
    before = signed()
    for _ in range(12):                                   # new connections: both workers take some
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("POST", "/ocsp", body=build_request(cert, issuer, os.urandom(16)),
                     headers={"Content-Type": "application/ocsp-request"})
        assert _status(conn.getresponse().read()) == ("successful", "good")
        conn.close()
    assert signed() == before + 12
