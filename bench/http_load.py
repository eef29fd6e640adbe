"""The HTTP load machinery: `udun serve` (gunicorn) under load from 8 keep-alive clients.

The server is started once (bench/run.py) and shared by the evidence, OCSP and TSA
figures. The load comes from wrk when it can be had (it costs the server little CPU);
otherwise from Python threads using http.client keep-alive connections.
"""
from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bench.measure import log
from udun.demo import wait_healthy   # stdlib only at import time: safe before UDUN_HOME is set

# wrk runs the top level once per thread; `done` runs in the main state and reads the
# per-thread counters through the thread objects collected in `setup`. Each script gives
# its own top part (the request) and an `ok(status, body)` that says what counts; it may
# keep the globals `exhausted` (requests it had no body left for) and `sample` (words,
# e.g. ids from answers, handed back in LoadResult.sample).
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
  local p, b, x = 0, 0, 0
  local kept = {}
  for _, t in ipairs(threads) do
    p = p + t:get("passed")
    b = b + t:get("bad")
    x = x + (t:get("exhausted") or 0)
    local s = t:get("sample")
    if s ~= nil and s ~= "" then
      table.insert(kept, s)
    end
  end
  local e = summary.errors
  io.write(string.format("UDUN_RESULT passed=%d bad=%d sockerr=%d exhausted=%d us=%d p50us=%d p99us=%d\n",
    p, b, e.connect + e.read + e.write + e.timeout, x, summary.duration,
    latency:percentile(50), latency:percentile(99)))
  io.write("UDUN_SAMPLE " .. table.concat(kept, " ") .. "\n")
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



@dataclass
class LoadResult:
    passed: int
    errors: int         # answers not counted, socket errors and `exhausted`
    seconds: float
    tool: str
    exhausted: int = 0  # requests the client had no unused body for (each also an error)
    sample: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.passed / self.seconds if self.seconds > 0 else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`udun serve` as a subprocess, stopped on exit of the `with` block whatever happens."""

    def __init__(self, port: int, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Server":
        exe = Path(sys.executable).parent / "udun"
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from udun.cli import main; main()"]
        cmd += ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL,
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
    m = re.search(r"UDUN_RESULT passed=(\d+) bad=(\d+) sockerr=(\d+) exhausted=(\d+) us=(\d+) p50us=(\d+) "
                  r"p99us=(\d+)", proc.stdout)
    if proc.returncode != 0 or m is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-300:]}")
    passed, bad, sockerr, exhausted, us, p50, p99 = (int(g) for g in m.groups())
    sample = re.search(r"UDUN_SAMPLE ([^\n]*)", proc.stdout)
    log(f"wrk: {passed} passed, {bad} other responses, {sockerr} socket errors in {us / 1e6:.1f}s; "
        f"latency p50 {p50 / 1000:.1f} ms, p99 {p99 / 1000:.1f} ms"
        + (f"; RAN OUT of bodies ({exhausted} requests had none left)" if exhausted else ""))
    return LoadResult(passed, bad + sockerr + exhausted, us / 1e6, "wrk", exhausted,
                      sample.group(1).split() if sample else [])


def load_python(port: int, path: str, bodies: list[bytes], ctype: str, ok: Callable[[int, bytes], bool],
                clients: int, seconds: float, once: bool = False) -> LoadResult:
    """Fallback: `clients` threads, each with one keep-alive http.client connection, each
    cycling through ``bodies``; ``ok(status, data)`` says whether an answer counts.

    ``once``: every body is sent at most once (client k takes bodies k, k + clients, ...);
    a client that runs out stops and counts one `exhausted` error.
    """
    headers = {"Content-Type": ctype, "Connection": "keep-alive"}
    lock = threading.Lock()
    totals = {"passed": 0, "errors": 0, "exhausted": 0}
    start_gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(k: int) -> None:
        passed = errors = exhausted = 0
        mine = bodies[k::clients] if once else bodies
        i = 0 if once else k * len(bodies) // clients
        conn: http.client.HTTPConnection | None = None
        start_gate.wait()
        while time.perf_counter() < stop_at[0]:
            if once and i >= len(mine):
                exhausted = 1
                break
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("POST", path, body=mine[i % len(mine)], headers=headers)
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
            totals["errors"] += errors + exhausted
            totals["exhausted"] += exhausted

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    stop_at[0] = start + seconds
    start_gate.wait()
    for t in threads:
        t.join(seconds + 30)
    elapsed = max(time.perf_counter() - start, seconds)   # like wrk: the whole duration, run out or not
    log(f"python client: {totals['passed']} passed, {totals['errors']} errors in {elapsed:.1f}s"
        + (f"; RAN OUT of bodies ({totals['exhausted']} clients)" if totals["exhausted"] else ""))
    return LoadResult(totals["passed"], totals["errors"], elapsed, "python", totals["exhausted"])


def measure(server: Server, run: Callable[[float], LoadResult], seconds: float, warmup: float,
            segments: int, prepare: Callable[[float], None] | None = None) -> LoadResult:
    """A warm-up run, then ``segments`` runs summed, each with fresh connections.

    gunicorn leaves a keep-alive connection where it was accepted, often all on one
    worker, so one run measures one placement; the sum over runs averages the placements.
    ``prepare(seconds)`` runs before each run (warm-up included), outside the timing.
    """
    if warmup > 0:
        if prepare is not None:
            prepare(max(1, round(warmup)))
        run(max(1, round(warmup)))   # every worker warms its caches
    result = LoadResult(0, 0, 0.0, "python")
    each = max(1, round(seconds / segments))   # wrk takes whole seconds
    for _ in range(segments):
        if prepare is not None:
            prepare(each)
        before = server.worker_cpu()
        part = run(each)
        after = server.worker_cpu()
        split = ", ".join(f"{after[p] - before.get(p, 0.0):.1f}s" for p in sorted(after))
        log(f"  {part.rate:.0f} req/s; worker CPU over {part.seconds:.1f}s: {split or 'unknown'}")
        result = LoadResult(result.passed + part.passed, result.errors + part.errors,
                            result.seconds + part.seconds, part.tool, result.exhausted + part.exhausted,
                            result.sample + part.sample)
    if server.proc is None or server.proc.poll() is not None:
        raise RuntimeError(f"the server died under load: {server.tail()}")
    log(f"load from {result.tool}: {result.passed} counted, {result.errors} errors in {result.seconds:.1f}s")
    return result
