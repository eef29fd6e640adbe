"""udun and its peers in the same run: each pair measured with the same wrk settings, the
same 8 clients and the same durations, the runs of the two servers alternating (A B, B A,
...) so that a shared machine's load falls on both alike; each pair printed as udun's
figure, the peer's figure and `..._ratio` = udun / peer (> 1: udun better; for times,
peer / udun, so that > 1 still means udun better).

If a peer cannot run (cfssl missing, a set-up step failing) the reason goes to stderr, the
pair counts as failed (bench/run.py exits 1) and udun's half is measured alone: no peer
figure and no ratio, never a made-up one.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path
from typing import Any, Callable

from bench import cfssl as cfssl_mod
from bench.http_load import LoadResult, Server, Side, free_port, measure_sides
from bench.measure import log

Figure = tuple[str, float, str]


def ratio(name: str, udun: float, peer: float) -> list[Figure]:
    return [(name, udun / peer, "ratio")] if peer > 0 else []


def pair(report: Any, what: str, udun: Callable[[], Side],
         peer: Callable[[contextlib.ExitStack], Side] | None, seconds: float, warmup: float, segments: int,
         stack: contextlib.ExitStack) -> tuple[LoadResult | None, LoadResult | None]:
    """udun's side and the peer's, measured alternately; a peer that fails to set up is
    reported (report.fail) and udun is measured alone. ``stack`` keeps the peer's server
    running until the caller is done with it."""
    log(f"measuring {what}")
    t0 = time.monotonic()
    try:
        u = udun()
    except Exception as e:
        report.fail(f"{what} (udun)", e)
        return None, None
    p: Side | None = None
    if peer is not None:
        try:
            p = peer(stack)
        except Exception as e:
            report.fail(f"{what} (peer)", e)
    try:
        results = measure_sides([u] + ([p] if p else []), seconds, warmup, segments)
    except Exception as e:
        report.fail(what, e)
        return None, None
    out: list[LoadResult | None] = [results[0], results[1] if p else None]
    for i, side in enumerate([u, p]):
        result = out[i]
        if side is not None and result is not None and result.passed == 0:
            # wrk counts requests still unanswered at its end as nothing at all
            report.fail(f"{what} ({side.label})", RuntimeError(f"{side.label}: no answer counted in "
                                                               f"{result.seconds:.1f}s: {side.target.tail()}"))
            out[i] = None
    log(f"{what} took {time.monotonic() - t0:.1f}s")
    return out[0], out[1]


# --- issuance over HTTP: udun serve-admin vs cfssl serve ---------------------------------

def issuance(report: Any, fx: Any, work: Path, wrk: str | None, scale: float,
             cfssl: "cfssl_mod.Cfssl | None") -> None:
    """issuance_http_c8 (udun) against cfssl_sign_http_c8, both storing every certificate."""
    import sqlite3

    from bench import issuance_load as il
    from bench.crl import database_path

    seconds, warmup, segments = 10 * scale, 2 * scale, 5
    workers = os.cpu_count() or 1
    t0 = time.perf_counter()
    csrs = il.make_csrs(il.pool_size(seconds, warmup, segments) + 2)
    probes, pool = csrs[:2], csrs[2:]
    log(f"issuance: {len(pool)} distinct CSRs (software P-256 keys) made in {time.perf_counter() - t0:.1f}s, "
        f"before the runs")
    db = database_path(fx.settings)

    def udun_rows() -> int:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)) as conn:
            return int(conn.execute("SELECT count(*) FROM certificates WHERE state = 'issued'").fetchone()[0])

    admin_key = secrets.token_urlsafe(32)
    loads: dict[str, il.IssuanceLoad] = {}
    with contextlib.ExitStack() as stack:
        def udun_side() -> Side:
            server = stack.enter_context(Server(free_port(), work / "serve-admin.log",
                                                env={"UDUN_ADMIN_API_KEY": admin_key}, command="serve-admin",
                                                workers=workers,
                                                health_headers={"Authorization": f"Bearer {admin_key}"}))
            log(f"udun serve-admin on {server.base} ({workers} workers, CA key on the SoftHSM token)")
            loads["udun"] = il.IssuanceLoad(
                "udun", server, server.port, "/api/v1/certificates", work, pool, fx.chain_der[0],
                {"Content-Type": "application/pkcs10", "Authorization": f"Bearer {admin_key}"}, lambda d: d,
                il.UDUN_OK, il.udun_answer_pem, udun_rows, wrk)
            return loads["udun"].side(probes[0])

        def cfssl_side(peer_stack: contextlib.ExitStack) -> Side:
            if cfssl is None:
                raise RuntimeError("cfssl is not set up (see the error above)")
            port = free_port()
            proc = peer_stack.enter_context(cfssl.serve(port))
            log(f"cfssl serve on 127.0.0.1:{port} (one Go process, GOMAXPROCS={cfssl.workers}, CA key in a file)")
            loads["cfssl"] = il.IssuanceLoad(
                "cfssl", proc, port, cfssl_mod.SIGN_PATH, work, pool, cfssl.ca_der,
                {"Content-Type": "application/json"}, il.cfssl_body, il.CFSSL_OK, il.cfssl_answer_pem,
                cfssl.rows, wrk)
            return loads["cfssl"].side(probes[1])

        u, p = pair(report, "issuance over HTTP, 8 clients: udun serve-admin vs cfssl serve", udun_side,
                    cfssl_side, seconds, warmup, segments, stack)
        figures: list[Figure] = []
        for label, result, name in (("udun", u, "issuance_http_c8"), ("cfssl", p, "cfssl_sign_http_c8")):
            if result is None:
                continue
            try:
                loads[label].check_persisted()
            except Exception as e:
                report.fail(f"{name} persistence", e)
                continue
            figures += [(name, result.rate, "cert/s"), (f"{name}_errors", float(result.errors), "count")]
        if u is not None and p is not None:
            figures += ratio("issuance_http_vs_cfssl_ratio", u.rate, p.rate)
        report.emit(figures)


# --- OCSP: cached vs cfssl ocspserve, nonce vs openssl ocsp ------------------------------

def ocsp(report: Any, server: Server, fx: Any, work: Path, wrk: str | None, scale: float,
         cfssl: "cfssl_mod.Cfssl | None", with_peers: bool) -> None:
    """ocsp_cached_c8 (with cfssl ocspserve) and ocsp_nonce_c8 (with openssl ocsp)."""
    from bench.ocsp_load import OcspLoad
    from bench.openssl_peer import OpensslOcsp

    seconds, warmup, segments = 6 * scale, 1 * scale, 3
    workers = os.cpu_count() or 1
    udun = OcspLoad(server, server.port, work, fx.cert_der, fx.chain_der[0], wrk, clients=8, workers=workers)

    def cfssl_side(stack: contextlib.ExitStack) -> Side:
        if cfssl is None:
            raise RuntimeError("cfssl is not set up (see the error above)")
        responses = cfssl.ocsp_responses()
        port = free_port()
        proc = stack.enter_context(cfssl.ocspserve(port, responses))
        log(f"cfssl ocspserve on 127.0.0.1:{port} (responses pre-signed by cfssl ocsprefresh, held in memory)")
        load = OcspLoad(proc, port, work, cfssl.first_certificate(), cfssl.ca_der, wrk, clients=8, label="cfssl",
                        path="/")
        peers["cfssl"] = load
        return load.cached_side()

    def openssl_side(stack: contextlib.ExitStack) -> Side:
        peer = OpensslOcsp.create(work, workers)
        port = free_port()
        proc = stack.enter_context(peer.serve(port))
        log(f"openssl ocsp on port {port} ({peer.workers} responder processes, responder key in a file)")
        load = OcspLoad(proc, port, work, peer.leaf_der, peer.ca_der, wrk, clients=8, label="openssl", path="/")
        peers["openssl"] = load
        side = load.nonce_side()
        # A fresh responder for every run: an openssl ocsp process that sees a client close
        # a connection before (or instead of) its next request spins on it and answers
        # nobody again (openssl issues 23934, 31129; -timeout does not help), and wrk closes
        # its connections at the end of every run.
        side.prepare = lambda _secs: proc.restart()
        running["openssl"] = proc
        return side

    def front_nonce_side() -> Side:
        """udun's runs start with the openssl responders stopped: left running after their
        run, those spinning processes took a core from udun's (its figure fell from ~1,800
        to ~830/s)."""
        side = fl.nonce_side()
        warm = side.prepare

        def prepare(secs: float) -> None:
            peer = running.get("openssl")
            if peer is not None:
                peer.stop()
            if warm is not None:
                warm(secs)

        side.prepare = prepare
        return side

    peers: dict[str, OcspLoad] = {}
    running: dict[str, Any] = {}
    # udun serve (gunicorn, one request per connection): the issue-4 figures, alone.
    with contextlib.ExitStack() as stack:
        u, _ = pair(report, "OCSP cached (no nonce), 8 clients, udun serve", udun.cached_side, None, seconds, warmup,
                    segments, stack)
    _emit_pair(report, u, None, "ocsp_cached_c8", "", "", None, "cached")
    with contextlib.ExitStack() as stack:
        u, _ = pair(report, "OCSP with nonce, 8 clients, udun serve", udun.nonce_side, None, seconds, warmup,
                    segments, stack)
    _emit_pair(report, u, None, "ocsp_nonce_c8", "", "", None, "nonce")
    report.run("OCSP errors", udun.error_figure)
    # udun serve-ocsp (keep-alive front, one process per core) against the peers.
    with contextlib.ExitStack() as front_stack:
        front = front_stack.enter_context(Server(free_port(), work / "serve-ocsp.log", command="serve-ocsp",
                                                 workers=workers))
        log(f"udun serve-ocsp on {front.base} ({workers} processes, keep-alive)")
        fl = OcspLoad(front, front.port, work, fx.cert_der, fx.chain_der[0], wrk, clients=8, workers=workers,
                      label="udun serve-ocsp")
        with contextlib.ExitStack() as stack:
            u, p = pair(report, "OCSP cached (no nonce), 8 clients, udun serve-ocsp"
                        + (" vs cfssl ocspserve" if with_peers else ""),
                        fl.cached_side, cfssl_side if with_peers else None, seconds, warmup, segments, stack)
        _emit_pair(report, u, p, "ocsp_front_cached_c8", "cfssl_ocspserve_c8", "ocsp_cached_vs_cfssl_ratio",
                   peers.get("cfssl"), "cached")
        with contextlib.ExitStack() as stack:
            u, p = pair(report, "OCSP with nonce, 8 clients, udun serve-ocsp" + (" vs openssl ocsp" if with_peers else ""),
                        front_nonce_side, openssl_side if with_peers else None, seconds, warmup, segments, stack)
        _emit_pair(report, u, p, "ocsp_front_nonce_c8", "openssl_ocsp_nonce_c8", "ocsp_nonce_vs_openssl_ratio",
                   peers.get("openssl"), "nonce")
        report.run("OCSP errors (serve-ocsp)", lambda: [("ocsp_front_c8_errors", v, u_) for _n, v, u_ in
                                                         fl.error_figure()])


def _emit_pair(report: Any, u: LoadResult | None, p: LoadResult | None, name: str, peer_name: str, ratio_name: str,
               peer_load: Any, kind: str) -> None:
    figures: list[Figure] = []
    if u is not None:
        figures.append((name, u.rate, "resp/s"))
    if p is not None:
        figures += [(peer_name, p.rate, "resp/s"),
                    (f"{peer_name}_errors", float(peer_load.errors.get(kind, 0) if peer_load else p.errors), "count")]
    if u is not None and p is not None:
        figures += ratio(ratio_name, u.rate, p.rate)
    report.emit(figures)


def setup_cfssl(report: Any, work: Path, base_url: str) -> "cfssl_mod.Cfssl | None":
    """cfssl's CA and database, or None with the reason reported (the pairs then fail)."""
    try:
        return cfssl_mod.Cfssl.create(work, os.cpu_count() or 1, base_url)
    except Exception as e:
        report.fail("cfssl set-up", e)
        return None
