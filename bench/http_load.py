"""The HTTP figures: `udun serve` (gunicorn) under load from 8 keep-alive clients.

The server is started once (bench/run.py) and shared by the verify and OCSP figures.
The load comes from wrk when it can be had (it costs the server little CPU); otherwise
from Python threads using http.client keep-alive connections.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.measure import log
from udun.demo import wait_healthy   # stdlib only at import time: safe before UDUN_HOME is set

VERIFY_PATH = "/api/v1/verify"
CONTENT_TYPE = "application/pkcs7-mime"
PASSED = re.compile(rb'"status"\s*:\s*"TOTAL_PASSED"')

# wrk runs the top level once per thread; `done` runs in the main state and reads the
# per-thread counters through the thread objects collected in `setup`. Each script gives
# its own top part (the request) and an `ok(status, body)` that says what counts.
WRK_TAIL = r"""
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  passed = 0
  bad = 0
end

function response(status, headers, body)
  if ok(status, body) then
    passed = passed + 1
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local p, b = 0, 0
  for _, t in ipairs(threads) do
    p = p + t:get("passed")
    b = b + t:get("bad")
  end
  local e = summary.errors
  io.write(string.format("UDUN_RESULT passed=%d bad=%d sockerr=%d us=%d p50us=%d p99us=%d\n",
    p, b, e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99)))
end
"""

# Every wrk script that POSTs one fixed body starts with this (%(body)s: the file, as JSON).
POST_FILE = r"""
local f = assert(io.open(%(body)s, "rb"))
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "%(ctype)s"
"""

VERIFY_SCRIPT = POST_FILE + r"""
function ok(status, body)
  return status == 200 and string.find(body, '"status"%%s*:%%s*"TOTAL_PASSED"') ~= nil
end
"""


@dataclass
class LoadResult:
    passed: int
    errors: int
    seconds: float
    tool: str

    @property
    def rate(self) -> float:
        return self.passed / self.seconds if self.seconds > 0 else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`udun serve` as a subprocess, stopped on exit of the `with` block whatever happens."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Server":
        exe = Path(sys.executable).parent / "udun"
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from udun.cli import main; main()"]
        cmd += ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(cmd, env=dict(os.environ), stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_healthy()
        except BaseException:   # __exit__ does not run when __enter__ raises
            self.stop()
            raise
        return self

    def _wait_healthy(self, seconds: float = 60) -> None:
        assert self.proc is not None
        wait_healthy(self.base, self.proc, seconds, detail=lambda: f": {self.tail()}")

    def worker_cpu(self) -> dict[int, float]:
        """CPU seconds used so far by each gunicorn worker (Linux /proc; empty elsewhere)."""
        if self.proc is None:
            return {}
        out: dict[int, float] = {}
        tick = os.sysconf("SC_CLK_TCK")
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            for pid in map(int, children):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                out[pid] = (int(fields[11]) + int(fields[12])) / tick   # utime + stime
        except (OSError, ValueError, IndexError):
            return {}
        return out

    def tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()   # gunicorn's arbiter stops its workers on SIGTERM
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            log("the server did not stop on SIGTERM; killing it")
            try:
                os.killpg(proc.pid, 9)   # its own session: the arbiter and its workers only
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)


def verify_once(base: str, body: bytes) -> dict[str, object]:
    """One request, to check the set-up before loading it."""
    req = urllib.request.Request(base + VERIFY_PATH, data=body, headers={"Content-Type": CONTENT_TYPE})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return dict(json.loads(resp.read()))


def find_wrk(try_install: bool = True) -> str | None:
    """wrk on PATH, else one quiet `apt-get install wrk` attempt (root only)."""
    found = shutil.which("wrk")
    if found or not try_install or not shutil.which("apt-get"):
        return found
    log("wrk not found; trying `apt-get install -y -qq wrk` once")
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]
    if os.geteuid() != 0:
        if not shutil.which("sudo"):
            return None
        cmd = ["sudo", "-n", *cmd]
    try:
        subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), timeout=180, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        log(f"apt-get failed: {e}")
    found = shutil.which("wrk")
    if not found:
        log("wrk is still missing; using the Python load generator")
    return found


def load_wrk(wrk: str, url: str, script: Path, clients: int, seconds: float) -> LoadResult:
    """One wrk run with a script that ends in WRK_TAIL (it prints the UDUN_RESULT line)."""
    # One wrk thread drives all connections (epoll): it leaves the cores to the server.
    proc = subprocess.run(
        [wrk, "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
         "-s", str(script), url],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=seconds + 60, check=False,
    )
    m = re.search(r"UDUN_RESULT passed=(\d+) bad=(\d+) sockerr=(\d+) us=(\d+) p50us=(\d+) p99us=(\d+)", proc.stdout)
    if proc.returncode != 0 or m is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-300:]}")
    passed, bad, sockerr, us, p50, p99 = (int(g) for g in m.groups())
    log(f"wrk: {passed} passed, {bad} other responses, {sockerr} socket errors in {us / 1e6:.1f}s; "
        f"latency p50 {p50 / 1000:.1f} ms, p99 {p99 / 1000:.1f} ms")
    return LoadResult(passed, bad + sockerr, us / 1e6, "wrk")


def load_python(port: int, path: str, bodies: list[bytes], ctype: str, ok: Callable[[int, bytes], bool],
                clients: int, seconds: float) -> LoadResult:
    """Fallback: `clients` threads, each with one keep-alive http.client connection, each
    cycling through ``bodies``; ``ok(status, data)`` says whether an answer counts."""
    headers = {"Content-Type": ctype, "Connection": "keep-alive"}
    lock = threading.Lock()
    totals = {"passed": 0, "errors": 0}
    start_gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(first: int) -> None:
        passed = errors = 0
        i = first
        conn: http.client.HTTPConnection | None = None
        start_gate.wait()
        while time.perf_counter() < stop_at[0]:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("POST", path, body=bodies[i % len(bodies)], headers=headers)
                i += 1
                resp = conn.getresponse()
                data = resp.read()
                if ok(resp.status, data):
                    passed += 1
                else:
                    errors += 1
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                errors += 1
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()
        with lock:
            totals["passed"] += passed
            totals["errors"] += errors

    threads = [threading.Thread(target=client, args=(n * len(bodies) // clients,), daemon=True)
               for n in range(clients)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    stop_at[0] = start + seconds
    start_gate.wait()
    for t in threads:
        t.join(seconds + 30)
    elapsed = time.perf_counter() - start
    log(f"python client: {totals['passed']} passed, {totals['errors']} errors in {elapsed:.1f}s")
    return LoadResult(totals["passed"], totals["errors"], elapsed, "python")


def measure(server: Server, run: Callable[[float], LoadResult], seconds: float, warmup: float,
            segments: int) -> LoadResult:
    """A warm-up run, then ``segments`` runs summed, each with fresh connections.

    gunicorn leaves a keep-alive connection where it was accepted, often all on one
    worker, so one run measures one placement; the sum over runs averages the placements.
    """
    if warmup > 0:
        run(max(1, round(warmup)))   # every worker warms its caches
    result = LoadResult(0, 0, 0.0, "python")
    each = max(1, round(seconds / segments))   # wrk takes whole seconds
    for _ in range(segments):
        before = server.worker_cpu()
        part = run(each)
        after = server.worker_cpu()
        split = ", ".join(f"{after[p] - before.get(p, 0.0):.1f}s" for p in sorted(after))
        log(f"  {part.rate:.0f} req/s; worker CPU over {part.seconds:.1f}s: {split or 'unknown'}")
        result = LoadResult(result.passed + part.passed, result.errors + part.errors,
                            result.seconds + part.seconds, part.tool)
    if server.proc is None or server.proc.poll() is not None:
        raise RuntimeError(f"the server died under load: {server.tail()}")
    log(f"load from {result.tool}: {result.passed} counted, {result.errors} errors in {result.seconds:.1f}s")
    return result


def http_verify(server: Server, work: Path, cms_der: bytes, clients: int, seconds: float, warmup: float,
                wrk: str | None, segments: int = 3) -> list[tuple[str, float, str]]:
    """Check one request against the running server, warm up, then measure."""
    body_path = work / "payment.p7s"
    body_path.write_bytes(cms_der)
    first = verify_once(server.base, cms_der)
    if first.get("status") != "TOTAL_PASSED":
        raise RuntimeError(f"the server does not pass the sample payment: {first.get('status')} "
                           f"{first.get('sub_indication')} {first.get('message')}")
    script = work / "verify.lua"
    script.write_text(VERIFY_SCRIPT % {"body": json.dumps(str(body_path)), "ctype": CONTENT_TYPE} + WRK_TAIL)

    def passed(status: int, data: bytes) -> bool:
        return status == 200 and PASSED.search(data) is not None

    def run(secs: float) -> LoadResult:
        if wrk:
            return load_wrk(wrk, server.base + VERIFY_PATH, script, clients, secs)
        return load_python(server.port, VERIFY_PATH, [cms_der], CONTENT_TYPE, passed, clients, secs)

    # The warm-up lets every worker validate the chain once and warm its caches.
    result = measure(server, run, seconds, warmup, segments)
    return [
        (f"http_verify_c{clients}", result.rate, "req/s"),
        (f"http_verify_c{clients}_errors", float(result.errors), "count"),
    ]
