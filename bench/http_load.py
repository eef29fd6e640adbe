"""The HTTP figure: `udun serve` (gunicorn) under load from 8 keep-alive clients.

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

from bench.measure import log

VERIFY_PATH = "/api/v1/verify"
CONTENT_TYPE = "application/pkcs7-mime"
PASSED = re.compile(rb'"status"\s*:\s*"TOTAL_PASSED"')

# wrk runs the top level once per thread; `done` runs in the main state and reads the
# per-thread counters through the thread objects collected in `setup`.
WRK_SCRIPT = r"""
local f = assert(io.open(%(body)s, "rb"))
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "%(ctype)s"

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  passed = 0
  bad = 0
end

function response(status, headers, body)
  if status == 200 and string.find(body, '"status"%%s*:%%s*"TOTAL_PASSED"') then
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
  io.write(string.format("UDUN_RESULT passed=%%d bad=%%d sockerr=%%d us=%%d p50us=%%d p99us=%%d\n",
    p, b, e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99)))
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
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the server did not answer /healthz within {seconds:.0f}s: {self.tail()}")

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


def load_wrk(wrk: str, base: str, body_path: Path, work: Path, clients: int, seconds: float) -> LoadResult:
    script = work / "verify.lua"
    script.write_text(WRK_SCRIPT % {"body": json.dumps(str(body_path)), "ctype": CONTENT_TYPE})
    # One wrk thread drives all connections (epoll): it leaves the cores to the server.
    proc = subprocess.run(
        [wrk, "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
         "-s", str(script), base + VERIFY_PATH],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=seconds + 60, check=False,
    )
    m = re.search(r"UDUN_RESULT passed=(\d+) bad=(\d+) sockerr=(\d+) us=(\d+) p50us=(\d+) p99us=(\d+)", proc.stdout)
    if proc.returncode != 0 or m is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-300:]}")
    passed, bad, sockerr, us, p50, p99 = (int(g) for g in m.groups())
    log(f"wrk: {passed} passed, {bad} other responses, {sockerr} socket errors in {us / 1e6:.1f}s; "
        f"latency p50 {p50 / 1000:.1f} ms, p99 {p99 / 1000:.1f} ms")
    return LoadResult(passed, bad + sockerr, us / 1e6, "wrk")


def load_python(port: int, body: bytes, clients: int, seconds: float) -> LoadResult:
    """Fallback: `clients` threads, each with one keep-alive http.client connection."""
    headers = {"Content-Type": CONTENT_TYPE, "Connection": "keep-alive"}
    lock = threading.Lock()
    totals = {"passed": 0, "errors": 0}
    start_gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client() -> None:
        passed = errors = 0
        conn: http.client.HTTPConnection | None = None
        start_gate.wait()
        while time.perf_counter() < stop_at[0]:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("POST", VERIFY_PATH, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.status == 200 and PASSED.search(data):
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

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
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


def http_verify(work: Path, cms_der: bytes, clients: int, seconds: float, warmup: float,
                use_wrk: bool = True, segments: int = 3) -> list[tuple[str, float, str]]:
    """Start the production server, check one request, warm up, then measure."""
    body_path = work / "payment.p7s"
    body_path.write_bytes(cms_der)
    wrk = find_wrk() if use_wrk else None
    port = free_port()
    with Server(port, work / "server.log") as server:
        log(f"server healthy on {server.base} ({os.cpu_count()} workers)")
        first = verify_once(server.base, cms_der)
        if first.get("status") != "TOTAL_PASSED":
            raise RuntimeError(f"the server does not pass the sample payment: {first.get('status')} "
                               f"{first.get('sub_indication')} {first.get('message')}")

        def run(secs: float) -> LoadResult:
            if wrk:
                return load_wrk(wrk, server.base, body_path, work, clients, secs)
            return load_python(port, cms_der, clients, secs)

        run(max(1, round(warmup)))   # every worker validates the chain once and warms its caches
        # Several runs, each with fresh connections: gunicorn leaves keep-alive
        # connections where they were accepted, often all on one worker, so one run
        # measures one placement; the sum over runs averages the placements.
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
    log(f"http: load from {result.tool}, server stopped")
    return [
        (f"http_verify_c{clients}", result.rate, "req/s"),
        (f"http_verify_c{clients}_errors", float(result.errors), "count"),
    ]
