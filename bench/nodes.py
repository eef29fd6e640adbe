"""udun on PostgreSQL: a CA home whose database is a throwaway PostgreSQL server, the
evidence figure against it, and three bank-facing nodes sharing it.

The PostgreSQL home is made with the CLI, as an operator would (`udun ca init`, then
`udun ca issue` for the bench's client key: the P-256 key on the bench's client token, so
that bench/payments.py signs for both engines with one key), with UDUN_DATABASE_URL
naming the throwaway server (bench/pg.py). A node is what README "Processes and the keys
each one holds" says another machine needs: a UDUN_HOME of its own holding a copy of the
online token (the delegated OCSP and TSA keys) and secrets/online.pin, and the database
URL; never secrets/ca.pin nor the CA tokens.

Node homes are copied by tests/tokencopy.py, the same code as the three-node test's.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs
from bench.evidence_load import EvidenceLoad
from bench.http_load import LoadResult, Server, free_port
from bench.measure import log
from bench.pg import Postgres
from tests.tokencopy import make_node_home

Figure = tuple[str, float, str]
NODES = 3


def _udun() -> list[str]:
    exe = Path(sys.executable).parent / "udun"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "udun.cli"]


def home_env(home: Path, database_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The bench's environment for another UDUN_HOME (its own SoftHSM config and tokens)."""
    env = {k: v for k, v in os.environ.items() if k not in ("UDUN_CA_PIN", "UDUN_ONLINE_PIN")}
    env.update({"UDUN_HOME": str(home), "UDUN_DATABASE_URL": database_url,
                "SOFTHSM2_CONF": str(home / "softhsm2.conf"), **(extra or {})})
    return env


def _cli(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    proc = subprocess.run([*_udun(), *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"udun {' '.join(args)} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc.stdout


@dataclass
class PgSite:
    """The CA home on PostgreSQL and the client certificate it issued for the bench's key."""

    home: Path
    database_url: str
    cert_der: bytes
    chain_der: list[bytes]     # issuing CA, root
    pg: Postgres | None = None
    bank_key: str = ""         # the bench bank's key on this database (verify, evidence:read)
    _maker: Any = None

    def postgres_cpu(self) -> dict[int, float]:
        """CPU seconds so far of the postmaster and its backends."""
        return procs.tree_cpu(self.pg.pid() if self.pg is not None else None)

    def maker(self, fx: Any) -> Any:
        """The one PaymentMaker for this database (bench/payments.py): the PostgreSQL figure
        and the nodes share it, so a tx_id is never used twice on the shared database."""
        if self._maker is None:
            from bench.payments import PaymentMaker

            self._maker = PaymentMaker(fx.ec_key, self.cert_der, self.chain_der)
        return self._maker

    @classmethod
    def create(cls, work: Path, pg: Postgres, csr_der: bytes) -> "PgSite":
        from asn1crypto import pem

        home = work / "pg-home"
        url = pg.database("udun_bench")
        env = home_env(home, url)
        _cli(env, "ca", "init")
        csr = work / "pg-client.csr"
        csr.write_bytes(pem.armor("CERTIFICATE REQUEST", csr_der))
        from bench.fixture import CUSTOMER, SAMPLE_TX

        _cli(env, "customer", "add", CUSTOMER, "--name", "压测客户", "--account", str(SAMPLE_TX["payer"]["account"]))  # type: ignore[index]
        _cli(env, "limits", "set", "--customer", CUSTOMER, "--per-day", "999999999999999")   # no run reaches it
        _cli(env, "ca", "issue", str(csr), "-o", str(work / "pg-client.pem"), "--customer", CUSTOMER)
        _cli(env, "ca", "chain", "-o", str(work / "pg-chain.pem"))
        cert = [der for _, _, der in pem.unarmor((work / "pg-client.pem").read_bytes(), multiple=True)]
        chain = [der for _, _, der in pem.unarmor((work / "pg-chain.pem").read_bytes(), multiple=True)]
        log(f"PostgreSQL home: CA initialised by `udun ca init`, client certificate issued ({len(chain)} CA "
            f"certificates in the chain)")
        _cli(env, "bank", "add", "bench")
        key = _cli(env, "bank", "key", "add", "bench", "--scope", "verify", "--scope", "evidence:read").strip()
        return cls(home, url, bytes(cert[0]), [bytes(c) for c in chain], pg, key)

    def server(self, home: Path, name: str, log_dir: Path) -> Server:
        """`udun serve` (default workers: one per core) in ``home`` on this site's database."""
        return Server(free_port(), log_dir / f"{name}.log", env=home_env(home, self.database_url))


# --- node homes: tests/tokencopy.py (a copy of the online token and online.pin, nothing
# else; checked) ---------------------------------------------------------------------------

# --- the three-node figure ------------------------------------------------------------

def _run_all(runs: list, seconds: float) -> list[LoadResult]:
    """Every side's run at the same time, one thread each (each waits on its own wrk)."""
    results: list[LoadResult | None] = [None] * len(runs)
    failures: list[BaseException] = []

    def one(i: int) -> None:
        try:
            results[i] = runs[i](seconds)
        except BaseException as e:   # re-raised below, in the main thread
            failures.append(e)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(runs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    if failures:
        raise failures[0]
    if any(r is None for r in results):
        raise RuntimeError("a load did not finish")
    return [r for r in results if r is not None]


def _merge(total: procs.CpuReport | None, part: procs.CpuReport) -> procs.CpuReport:
    if total is None:
        return part
    seconds: dict[tuple[str, int, str], float] = {}
    names: dict[tuple[str, int, str], str] = {}
    for line in total.lines + part.lines:
        key = (line.group, line.pid, line.name if not line.pid else "")   # wrk lines: pid 0, one per node
        seconds[key] = seconds.get(key, 0.0) + line.seconds
        names.setdefault(key, line.name)
    return procs.CpuReport(total.wall + part.wall, total.cores,
                           [procs.CpuLine(g, p, names[(g, p, n)], s) for (g, p, n), s in seconds.items()],
                           total.machine_busy + part.machine_busy, total.machine_idle + part.machine_idle)


def conclusion(cpu: procs.CpuReport, nodes: int, rate: float) -> str:
    """One line: what limits the nodes on this machine."""
    udun = sum(cpu.group(f"node{i}") for i in range(1, nodes + 1))
    pg = cpu.group("postgres")
    busy = cpu.machine_busy / cpu.capacity if cpu.capacity else 0.0
    used = (f"udun {cpu.cores_used(udun):.2f} cores, PostgreSQL {cpu.cores_used(pg):.2f}, "
            f"wrk {cpu.cores_used(cpu.group('wrk')):.2f}, bench {cpu.cores_used(cpu.group('bench')):.2f}, "
            f"other processes {cpu.cores_used(cpu.other):.2f}")
    per = ""
    if rate > 0:
        per = (f"; per answered payment {1000 * cpu.cores_used(udun) / rate:.2f} ms of udun CPU and "
               f"{1000 * cpu.cores_used(pg) / rate:.2f} ms of PostgreSQL CPU")
    if busy >= 0.9:
        return (f"{nodes} nodes on {cpu.cores} cores are CPU-bound: the machine was {busy:.0%} busy ({used}){per}; "
                f"on one machine more nodes only split the same cores (the total cannot pass "
                f"cores / CPU per payment), so scaling out needs machines, not processes")
    return (f"{nodes} nodes on {cpu.cores} cores are NOT CPU-bound: the machine was {busy:.0%} busy ({used}){per}; "
            f"the rest is waiting (PostgreSQL commits and row locks, the token), not the cores")


def cpu_figures(cpu: procs.CpuReport, masters: list[int | None]) -> list[Figure]:
    """The CPU accounting as figures, in cores' worth (CPU seconds per wall second) over
    ``nodes3_cpu_seconds`` of measured runs: per group, and per process under names that
    do not depend on pids (node N's gunicorn master and its workers in pid order;
    PostgreSQL's client backends and its other processes; each node's wrk)."""
    p = f"nodes{len(masters)}_cpu"
    figures: list[Figure] = [(f"{p}_seconds", cpu.wall, "s")]
    udun = 0.0
    for i, master in enumerate(masters, 1):
        lines = sorted((line for line in cpu.lines if line.group == f"node{i}"), key=lambda line: line.pid)
        udun += sum(line.seconds for line in lines)
        figures.append((f"{p}_node{i}", cpu.cores_used(sum(line.seconds for line in lines)), "core"))
        figures += [(f"{p}_node{i}_master", cpu.cores_used(line.seconds), "core") for line in lines
                    if line.pid == master]
        figures += [(f"{p}_node{i}_worker{j}", cpu.cores_used(line.seconds), "core")
                    for j, line in enumerate((x for x in lines if x.pid != master), 1)]
    pg = [line for line in cpu.lines if line.group == "postgres"]
    backends = sum(line.seconds for line in pg if line.name.startswith(f"postgres: {pg_user()} "))
    figures += [
        (f"{p}_udun", cpu.cores_used(udun), "core"),
        (f"{p}_postgres", cpu.cores_used(cpu.group("postgres")), "core"),
        (f"{p}_postgres_backends", cpu.cores_used(backends), "core"),
        (f"{p}_postgres_other", cpu.cores_used(cpu.group("postgres") - backends), "core"),
    ]
    figures += [(f"{p}_wrk_node{i}", cpu.cores_used(sum(line.seconds for line in cpu.lines
                                                          if line.group == "wrk" and line.name == f"wrk node{i}")),
                 "core") for i in range(1, len(masters) + 1)]
    figures += [
        (f"{p}_wrk", cpu.cores_used(cpu.group("wrk")), "core"),
        (f"{p}_bench", cpu.cores_used(cpu.group("bench")), "core"),
        (f"{p}_other", cpu.cores_used(cpu.other), "core"),
        (f"{p}_idle", cpu.cores_used(cpu.machine_idle), "core"),
    ]
    return figures


def pg_user() -> str:
    from bench.pg import USER

    return USER


@dataclass
class ThreeNodes:
    """Three `udun serve` nodes on the site's PostgreSQL, each loaded by its own wrk at once."""

    site: PgSite
    pg: Postgres
    work: Path
    maker: object               # bench/payments.PaymentMaker for the site's certificate
    wrk: str | None
    clients: int = 8            # per node: each gets the load the one-node figure gives its node

    def figures(self, seconds: float, warmup: float, segments: int, one_node: float | None) -> list[Figure]:
        homes = [make_node_home(self.site.home, self.work / f"node{i}") for i in range(1, NODES + 1)]
        log("three nodes: homes made (each a copy of the online token and online.pin only)")
        root = self.site.chain_der[-1]
        with contextlib.ExitStack() as stack:
            servers = [stack.enter_context(self.site.server(h, f"node{i}", self.work))
                       for i, h in enumerate(homes, 1)]
            masters = [s.pid() for s in servers]
            log("three nodes: " + ", ".join(f"node{i} on {s.base}" for i, s in enumerate(servers, 1)))
            loads = [EvidenceLoad(s, self.work, self.maker, root, self.site.bank_key, self.wrk,  # type: ignore[arg-type]
                                  clients=self.clients, tag=f"node{i}", label=f"node{i}")
                     for i, s in enumerate(servers, 1)]
            sides = [load.side() for load in loads]
            groups = {f"node{i}": procs.Group(s.pid_list) for i, s in enumerate(servers, 1)}
            groups["postgres"] = procs.Group(lambda: [self.pg.pid()])
            groups["bench"] = procs.this_process()
            meter = procs.CpuMeter(groups)
            if warmup > 0:
                for side in sides:
                    assert side.prepare is not None
                    side.prepare(max(1, round(warmup)))
                _run_all([side.run for side in sides], max(1, round(warmup)))
            each = max(1, round(seconds / segments))
            totals = [LoadResult(0, 0, 0.0, "wrk") for _ in sides]
            cpu: procs.CpuReport | None = None
            for _ in range(segments):
                for side in sides:
                    assert side.prepare is not None
                    side.prepare(each)
                meter.start()
                parts = _run_all([side.run for side in sides], each)
                for i, part in enumerate(parts, 1):
                    meter.add("wrk", f"wrk node{i}", part.client_cpu)
                report = meter.stop()
                log(f"  three nodes: {' + '.join(f'{p.rate:.0f}' for p in parts)} = "
                    f"{sum(p.rate for p in parts):.0f} req/s; {report.summary()}")
                cpu = _merge(cpu, report)
                totals = [LoadResult(t.passed + p.passed, t.errors + p.errors, t.seconds + p.seconds, p.tool,
                                     t.exhausted + p.exhausted, t.sample + p.sample, t.client_cpu + p.client_cpu)
                          for t, p in zip(totals, parts)]
            for s in servers:
                if not s.alive():
                    raise RuntimeError(f"a node died under load: {s.tail()}")
            for load, result in zip(loads, totals):
                load.check_evidence(result.sample)
        assert cpu is not None
        log("three nodes: CPU per process over the measured runs:")
        for line in cpu.table():
            log(line)
        log(f"three nodes: {cpu.summary()}")
        rates = [t.rate for t in totals]
        total = sum(rates)
        log("conclusion: " + conclusion(cpu, NODES, total))
        figures: list[Figure] = [(f"nodes{NODES}_verify_evidence_total", total, "req/s")]
        figures += [(f"nodes{NODES}_verify_evidence_node{i}", r, "req/s") for i, r in enumerate(rates, 1)]
        figures.append((f"nodes{NODES}_verify_evidence_errors", float(sum(t.errors for t in totals)), "count"))
        if one_node:
            figures.append((f"nodes{NODES}_vs_one_node_ratio", total / one_node, "ratio"))
        figures += cpu_figures(cpu, masters)
        return figures
