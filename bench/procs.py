"""Processes the bench starts and measures: CPU accounting from /proc, peer servers.

CPU accounting: the user + system CPU seconds (utime + stime in /proc/PID/stat, in clock
ticks) of each process of a group — a server's process tree, PostgreSQL's postmaster and
its backends, ... — read before and after an interval; wrk's own from wait4's rusage when
it exits (bench/http_load.py). A process that ends inside the interval takes its CPU with
it (it is then missing from the table); one that starts inside it counts from zero. The
machine's busy and idle time over the same interval come from /proc/stat, so what the
other tenants of a shared machine used shows up as "other". Linux only: elsewhere the
tables are empty and the figures that need them fail.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from bench.measure import log

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` so far, in seconds; None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, ValueError, IndexError):
        return None


def command_name(pid: int, root: int | None = None) -> str:
    """A short name that stays the same while the process lives: PostgreSQL's process title
    without its changing state ("postgres: udun udun_bench 127.0.0.1(4242)"), else the
    program and its subcommand, with "master" / "worker" when it is (under) ``root``."""
    try:
        argv = [a for a in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0") if a]
    except OSError:
        return "?"
    if not argv:
        return "?"
    if argv[0].startswith("postgres:"):
        title = " ".join(argv)
        return title[:title.index(")") + 1] if ")" in title else title[:48]
    program = os.path.basename(argv[0])
    if program.startswith("python"):
        if "-m" in argv[:-1]:
            program = argv[argv.index("-m") + 1].split(".")[0]
        elif len(argv) > 1:
            program = os.path.basename(argv[1]).removesuffix(".py")
    words = [program] + [a for a in argv[1:] if a in ("serve", "serve-admin", "ocsp", "ocspserve")][:1]
    if root is not None and pid != root:
        words.append("worker")
    elif root is not None and children(pid):
        words.append("master")
    return " ".join(words)


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                out += [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
    except OSError:
        return []
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (that exist now)."""
    seen: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        if p in seen or cpu_seconds(p) is None:
            continue
        seen.append(p)
        todo += children(p)
    return seen


def tree_cpu(pid: int | None) -> dict[int, float]:
    """CPU seconds so far of every process of ``pid``'s tree."""
    if pid is None:
        return {}
    out: dict[int, float] = {}
    for p in tree(pid):
        s = cpu_seconds(p)
        if s is not None:
            out[p] = s
    return out


def machine_times() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine since boot, all cores (/proc/stat)."""
    try:
        line = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return 0.0, 0.0
    v = [int(x) for x in line[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    busy = v[0] + v[1] + v[2] + sum(v[5:8])
    return busy / _TICK, idle / _TICK


@dataclass
class CpuLine:
    group: str
    pid: int
    name: str
    seconds: float


@dataclass
class CpuReport:
    """What each process used over one interval, and the machine's busy / idle time."""

    wall: float
    cores: int
    lines: list[CpuLine] = field(default_factory=list)
    machine_busy: float = 0.0
    machine_idle: float = 0.0

    def group(self, name: str) -> float:
        return sum(line.seconds for line in self.lines if line.group == name)

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(line.group for line in self.lines))

    @property
    def ours(self) -> float:
        return sum(line.seconds for line in self.lines)

    @property
    def other(self) -> float:
        """Busy time of the machine that none of the listed processes account for."""
        return max(0.0, self.machine_busy - self.ours)

    @property
    def capacity(self) -> float:
        return self.wall * self.cores

    def cores_used(self, seconds: float) -> float:
        return seconds / self.wall if self.wall > 0 else 0.0

    def summary(self) -> str:
        parts = [f"{g} {self.group(g):.2f}s" for g in self.groups]
        return (f"CPU over {self.wall:.1f}s ({self.cores} cores = {self.capacity:.1f} core-s): " + ", ".join(parts)
                + f", other processes {self.other:.2f}s, idle {self.machine_idle:.2f}s")

    def table(self) -> list[str]:
        """One line per process that used CPU (the idle ones counted in a last line)."""
        busy = [line for line in self.lines if line.seconds >= 0.005]
        out = [f"  {line.group:<9} {('pid ' + str(line.pid)) if line.pid else '':<10} {line.name:<48} "
               f"{line.seconds:7.2f} s ({self.cores_used(line.seconds):.2f} cores)" for line in busy]
        if len(busy) < len(self.lines):
            out.append(f"  ({len(self.lines) - len(busy)} processes used no CPU to speak of)")
        return out


@dataclass(frozen=True)
class Group:
    """The processes of one group: the trees under ``roots()`` (resolved at start and at
    stop, so workers started in between are seen), or the roots alone."""

    roots: Callable[[], Sequence[int | None]]
    with_children: bool = True

    def cpu(self) -> dict[int, float]:
        acc: dict[int, float] = {}
        for root in self.roots():
            if self.with_children:
                acc.update(tree_cpu(root))
            elif root is not None and (s := cpu_seconds(root)) is not None:
                acc[root] = s
        return acc

    def names(self) -> dict[int, str]:
        out: dict[int, str] = {}
        for root in self.roots():
            if root is None:
                continue
            for pid in (tree(root) if self.with_children else [root]):
                out[pid] = command_name(pid, root if self.with_children else None)
        return out


def this_process() -> Group:
    """The bench process alone (its children are the servers, counted in their groups)."""
    return Group(lambda: [os.getpid()], with_children=False)


class CpuMeter:
    """CPU seconds per process over an interval: ``start()``, then ``stop()`` -> CpuReport."""

    def __init__(self, groups: dict[str, Group]) -> None:
        self.groups = groups
        self.before: dict[str, dict[int, float]] = {}
        self.t0 = 0.0
        self.machine0 = (0.0, 0.0)
        self.extra: list[CpuLine] = []

    def _snapshot(self) -> dict[str, dict[int, float]]:
        return {name: group.cpu() for name, group in self.groups.items()}

    def start(self) -> None:
        self.extra = []
        self.machine0 = machine_times()
        self.t0 = time.perf_counter()
        self.before = self._snapshot()

    def add(self, group: str, name: str, seconds: float, pid: int = 0) -> None:
        """CPU measured another way (a child's rusage when it was reaped: wrk)."""
        self.extra.append(CpuLine(group, pid, name, seconds))

    def stop(self) -> CpuReport:
        after = self._snapshot()
        wall = time.perf_counter() - self.t0
        busy1, idle1 = machine_times()
        report = CpuReport(wall, os.cpu_count() or 1, machine_busy=busy1 - self.machine0[0],
                           machine_idle=idle1 - self.machine0[1])
        for name, procs in after.items():
            names = self.groups[name].names()
            for pid, seconds in sorted(procs.items()):
                report.lines.append(CpuLine(name, pid, names.get(pid, command_name(pid)),
                                            max(0.0, seconds - self.before.get(name, {}).get(pid, 0.0))))
        report.lines += self.extra
        return report


# --- peer servers --------------------------------------------------------------------

class ServerProcess:
    """What udun's servers (bench/http_load.Server) and the peers' share: a subprocess whose
    output goes to ``log_path``, stopped by ``stop()`` on leaving the `with` block."""

    proc: subprocess.Popen[bytes] | None
    log_path: Path

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def tail(self, lines: int = 5) -> str:
        """The last lines of its log, on one line (for error messages)."""
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def stop(self) -> None:
        raise NotImplementedError

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PeerProcess(ServerProcess):
    """A peer's server (cfssl, openssl ocsp) as a subprocess in a session of its own,
    stopped with its whole process group on exit of the `with` block whatever happens.

    Offers what bench/http_load.measure asks of a server: worker_cpu(), alive(), tail()."""

    def __init__(self, name: str, cmd: list[str], log_path: Path, ready_url: str, cwd: Path | None = None,
                 env: dict[str, str] | None = None, ready: Callable[[], bool] | None = None,
                 new_session: bool = True) -> None:
        self.name = name
        # `openssl ocsp -multi` makes its own process group (setpgid, which fails in a
        # session leader, and then it exits): it gets none of ours.
        self.new_session = new_session
        self.cmd = cmd
        self.log_path = log_path
        self.ready_url = ready_url
        self.cwd = cwd
        self.env = env
        self.ready = ready
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "PeerProcess":
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=self.new_session)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self) -> None:
        """Stop and start again (between runs, outside the timing)."""
        self.stop()
        self.__enter__()

    def _probe(self) -> bool:
        if self.ready is not None:
            return self.ready()
        try:
            with urllib.request.urlopen(self.ready_url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True        # it answers, even if not 200
        except OSError:
            return False

    def _wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited at start: {self.tail()}")
            if self._probe():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer within {seconds:.0f}s: {self.tail()}")

    def worker_cpu(self) -> dict[int, float]:
        return tree_cpu(self.pid())

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)     # its own group: the server and its children only
            except ProcessLookupError:       # no group (yet): the process alone
                if proc.poll() is not None:
                    break
                proc.send_signal(sig)
            try:
                proc.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop on signal {sig}")
        try:   # children that outlived their parent (openssl ocsp -multi)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
