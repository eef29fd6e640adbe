"""The HTTP load machinery: `udun serve` (gunicorn) under load from 8 keep-alive clients.

The server is started once (bench/run.py) and shared by the evidence, OCSP and TSA
figures. The load comes from wrk when it can be had (it costs the server little CPU);
otherwise from Python threads using http.client keep-alive connections. measure_sides
runs one server's load, or two servers' (udun and a peer) alternately.
"""
from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from bench import procs
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
    client_cpu: float = 0.0   # user + system CPU seconds of the load generator (wrk's rusage)

    @property
    def rate(self) -> float:
        return self.passed / self.seconds if self.seconds > 0 else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


UNLIMITED = {"UDUN_RATE_LIMIT_PER_ADDRESS": "0", "UDUN_RATE_LIMIT_PER_KEY": "0"}


class Server(procs.ServerProcess):
    """`udun serve` as a subprocess, stopped on exit of the `with` block whatever happens."""

    def __init__(self, port: int, log_path: Path, env: dict[str, str] | None = None, *, command: str = "serve",
                 workers: int | None = None, health_path: str = "/healthz",
                 health_headers: dict[str, str] | None = None) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        # The rate limits off: every client here is 127.0.0.1, at rates a limit exists to
        # refuse, and the peers measured beside udun have none (README "Performance").
        self.env = {**os.environ, **UNLIMITED, **(env or {})}
        self.command = command            # "serve" (bank-facing) or "serve-admin" (issuance)
        self.workers = workers            # None: udun's default, one per core
        self.health_path = health_path
        self.health_headers = health_headers or {}   # serve-admin's /healthz wants the admin key
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Server":
        exe = Path(sys.executable).parent / "udun"
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from udun.cli import main; main()"]
        cmd += [self.command, "--host", "127.0.0.1", "--port", str(self.port)]
        if self.workers is not None:
            cmd += ["--workers", str(self.workers)]
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
        if self.health_path == "/healthz" and not self.health_headers:
            wait_healthy(self.base, self.proc, seconds, detail=lambda: f": {self.tail()}")
            return
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"udun {self.command} exited with code {self.proc.returncode}: {self.tail()}")
            try:
                req = urllib.request.Request(self.base + self.health_path, headers=self.health_headers)
                with urllib.request.urlopen(req, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"udun {self.command} did not answer {self.health_path} within {seconds:.0f}s: {self.tail()}")

    def pid_list(self) -> list[int | None]:
        """The gunicorn master (its workers are its children): a procs.Group's roots."""
        return [self.pid()]

    def worker_cpu(self) -> dict[int, float]:
        """CPU seconds used so far by each gunicorn worker (Linux /proc; empty elsewhere)."""
        if self.proc is None:
            return {}
        out: dict[int, float] = {}
        for pid in procs.children(self.proc.pid):
            seconds = procs.cpu_seconds(pid)
            if seconds is not None:
                out[pid] = seconds
        return out

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


_RESULT = re.compile(r"UDUN_RESULT passed=(\d+) bad=(\d+) sockerr=(\d+) exhausted=(\d+) us=(\d+) p50us=(\d+) "
                     r"p99us=(\d+)")


def wrk_command(wrk: str, url: str, script: Path, clients: int, seconds: float) -> list[str]:
    """The one wrk invocation every figure uses: one thread drives all connections (epoll),
    leaving the cores to the server; whole seconds; a 10 s timeout per request."""
    return [wrk, "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(script), url]


class WrkRun:
    """One wrk process started; ``finish()`` waits for it and reads the UDUN_RESULT line.

    wrk is reaped with wait4, whose rusage gives its own user + system CPU seconds."""

    def __init__(self, wrk: str, url: str, script: Path, clients: int, seconds: float, label: str = "") -> None:
        self.seconds = seconds
        self.label = label
        self.out = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(wrk_command(wrk, url, script, clients, seconds), stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=subprocess.STDOUT)

    def _reap(self) -> tuple[int, float]:
        deadline = time.monotonic() + self.seconds + 60
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                self.proc.returncode = code            # reaped here: Popen must not wait again
                return code, usage.ru_utime + usage.ru_stime
            if time.monotonic() > deadline:
                self.proc.kill()
                _, status, usage = os.wait4(self.proc.pid, 0)
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                raise RuntimeError(f"wrk did not finish within {self.seconds + 60:.0f}s")
            time.sleep(0.02)

    def finish(self) -> LoadResult:
        try:
            code, cpu = self._reap()
            self.out.seek(0)
            text = self.out.read().decode(errors="replace")
        finally:
            self.out.close()
        m = _RESULT.search(text)
        if code != 0 or m is None:
            raise RuntimeError(f"wrk failed (exit {code}): {text.strip()[-300:]}")
        passed, bad, sockerr, exhausted, us, p50, p99 = (int(g) for g in m.groups())
        sample = re.search(r"UDUN_SAMPLE ([^\n]*)", text)
        log(f"wrk{' ' + self.label if self.label else ''}: {passed} passed, {bad} other responses, {sockerr} socket "
            f"errors in {us / 1e6:.1f}s; latency p50 {p50 / 1000:.1f} ms, p99 {p99 / 1000:.1f} ms; wrk CPU {cpu:.2f}s"
            + (f"; RAN OUT of bodies ({exhausted} requests had none left)" if exhausted else ""))
        return LoadResult(passed, bad + sockerr + exhausted, us / 1e6, "wrk", exhausted,
                          sample.group(1).split() if sample else [], cpu)


def load_wrk(wrk: str, url: str, script: Path, clients: int, seconds: float, label: str = "") -> LoadResult:
    """One wrk run with a script that ends in WRK_TAIL (it prints the UDUN_RESULT line)."""
    return WrkRun(wrk, url, script, clients, seconds, label).finish()


def load_python(port: int, path: str, bodies: list[bytes], ctype: str, ok: Callable[[int, bytes], bool],
                clients: int, seconds: float, once: bool = False,
                extra_headers: dict[str, str] | None = None) -> LoadResult:
    """Fallback: `clients` threads, each with one keep-alive http.client connection, each
    cycling through ``bodies``; ``ok(status, data)`` says whether an answer counts.

    ``once``: every body is sent at most once (client k takes bodies k, k + clients, ...);
    a client that runs out stops and counts one `exhausted` error.
    """
    headers = {"Content-Type": ctype, "Connection": "keep-alive", **(extra_headers or {})}
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


class Target(Protocol):
    """What measure_sides asks of a server under load: bench/http_load.Server, procs.PeerProcess."""

    def worker_cpu(self) -> dict[int, float]: ...
    def alive(self) -> bool: ...
    def tail(self, lines: int = 5) -> str: ...


@dataclass
class Side:
    """One server's part of a measurement: ``run(seconds)`` loads ``target`` once;
    ``prepare(seconds)`` runs before each run (warm-up included), outside the timing."""

    label: str
    target: Target
    run: Callable[[float], LoadResult]
    prepare: Callable[[float], None] | None = None
    # other processes whose CPU to log per run (name -> CPU seconds so far per pid), e.g.
    # PostgreSQL's backends for udun on PostgreSQL
    also: dict[str, Callable[[], dict[int, float]]] = field(default_factory=dict)


def _add(a: LoadResult, b: LoadResult) -> LoadResult:
    return LoadResult(a.passed + b.passed, a.errors + b.errors, a.seconds + b.seconds, b.tool,
                      a.exhausted + b.exhausted, a.sample + b.sample, a.client_cpu + b.client_cpu)


def measure_sides(sides: list[Side], seconds: float, warmup: float, segments: int) -> list[LoadResult]:
    """A warm-up run of each side, then ``segments`` runs of each, summed, each with fresh
    connections. With two sides (udun and its peer) the runs alternate A B, B A, A B, ...
    so that the load of a shared machine, and any drift in it, falls on both alike.

    gunicorn leaves a keep-alive connection where it was accepted, often all on one
    worker, so one run measures one placement; the sum over runs averages the placements.
    """
    if warmup > 0:
        for side in sides:
            if side.prepare is not None:
                side.prepare(max(1, round(warmup)))
            side.run(max(1, round(warmup)))   # every worker warms its caches
    results = [LoadResult(0, 0, 0.0, "python") for _ in sides]
    each = max(1, round(seconds / segments))   # wrk takes whole seconds
    for i in range(segments):
        order = list(enumerate(sides))
        if i % 2:
            order.reverse()
        for k, side in order:
            if side.prepare is not None:
                side.prepare(each)
            before = side.target.worker_cpu()
            also0 = {name: f() for name, f in side.also.items()}
            part = side.run(each)
            after = side.target.worker_cpu()
            also = {name: sum(v - also0[name].get(p, 0.0) for p, v in f().items()) for name, f in side.also.items()}
            split = ", ".join(f"{after[p] - before.get(p, 0.0):.1f}s" for p in sorted(after))
            log(f"  {side.label}: {part.rate:.0f} req/s; server CPU over {part.seconds:.1f}s: {split or 'unknown'}"
                + "".join(f"; {name} {v:.1f}s" for name, v in also.items())
                + (f"; client {part.client_cpu:.1f}s" if part.client_cpu else ""))
            results[k] = _add(results[k], part)
    for side, result in zip(sides, results):
        if not side.target.alive():
            raise RuntimeError(f"{side.label}: the server died under load: {side.target.tail()}")
        log(f"{side.label}: load from {result.tool}: {result.passed} counted, {result.errors} errors in "
            f"{result.seconds:.1f}s ({result.rate:.1f}/s)")
    return results


def measure(server: Target, run: Callable[[float], LoadResult], seconds: float, warmup: float,
            segments: int, prepare: Callable[[float], None] | None = None, label: str = "udun") -> LoadResult:
    """measure_sides for one server."""
    return measure_sides([Side(label, server, run, prepare)], seconds, warmup, segments)[0]
