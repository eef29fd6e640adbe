"""udun benchmark: one run, one `name value unit` line per figure on stdout.

Run by `make bench` as `.venv/bin/python bench/run.py`. Everything is set up in a fresh
temporary UDUN_HOME (SoftHSM tokens, SQLite database, CA) that is removed at the end,
together with the server, even on error. Progress goes to stderr. If a figure fails, the
reason goes to stderr, the other figures still run, and the exit code is 1.

Figures (2 cores: about six minutes in all; --scale multiplies every duration, not the
CRL sizes; --only runs some groups: inprocess, peers, server, postgres, controls, nodes, crl,
search). The
server figures run against one `udun serve` started with a random UDUN_ADMIN_API_KEY (for
fetching evidence back) and otherwise default settings: every UDUN_* variable of the
caller's environment is dropped first.

Peers in the same run (issue 11): cfssl (Debian golang-cfssl) and the openssl binary are
measured beside udun, pair by pair, on the same machine with the same load: 8 clients
from one wrk process (`wrk -t1 -c8 -dNs --timeout 10s`, Lua scripts that count only
answers that are what was asked for), the same durations, the runs of the two servers
alternating (A B, B A, ...: a shared machine's load falls on both alike; bench/peers.py),
every server given as many worker processes as udun gets (one per core) where the peer
allows it (cfssl is one Go process using every core; openssl ocsp runs -multi W
processes). Each pair prints udun's figure, the peer's, and `..._ratio` = udun / peer:
> 1 means udun is better, for rates and (inverted: peer / udun) for times alike. The
client is the same for both sides and asks for keep-alive; what the server does with it
is the server's: gunicorn's sync workers answer `Connection: close` (udun's design, see
udun/server.py), so every udun request is a new TCP connection, while cfssl and openssl
ocsp keep theirs open (cfssl ocspserve answers about 30% fewer requests when the client
sends `Connection: close`; measured by hand, not a figure). Unfair against udun, and not
fixable here: the peers' keys are in PEM files, udun's CA and delegated keys sign on
SoftHSM tokens through PKCS#11 (~4,600 P-256 signatures/s a process against ~36,000 in
software). If a peer cannot run, the reason goes to stderr, udun's half is measured alone
(no peer figure, no ratio) and the run exits 1.

cpu_count                      cores the machine has (the server runs one worker per core)
token_sign_ec_p256_udun        sig/s through udun's signer: pkicore.algorithms.sign() on a
                               keystore.token.TokenKey (SHA-256 on the host, scheme check,
                               C_Sign with CKM_ECDSA, r||s -> DER), one session, one thread;
                               15 s per path in 10 alternating rounds, so noise hits both
token_sign_ec_p256_raw         sig/s of the bare python-pkcs11 call private.sign(digest,
                               mechanism=ECDSA) on the same key object in the same session
token_sign_ec_p256_ratio       udun / raw: the cost of udun's seam (1.0 = none)
token_sign_rsa2048_{udun,raw,ratio}
                               the same for RSA-2048 (raw: CKM_RSA_PKCS over
                               DigestInfo||SHA-256 digest)
cms_verify_inprocess           verify/s of one attached P-256 CAdES-BES payment by
                               pkicore.cms_verify.Verifier with a ChainValidator and the
                               status now of every certificate below the anchor (signer:
                               OCSP responder in-process; issuing CA: the root's CRL), one
                               thread, warm caches (the chain and each (path, status data)
                               verdict are validated on the first call), 10 s
issuance                       cert/s through ca.issue() on one CSR (policy and PoP check,
                               TBS, lint, intent row, sign on the CA token, store), SQLite,
                               5 s
issuance_http_c8               cert/s answered 201 with a certificate by `udun serve-admin`
                               (gunicorn, --workers = cores; CA key on the SoftHSM token,
                               SQLite WAL/NORMAL) when 8 clients POST /api/v1/certificates
                               with the admin bearer key and a DER CSR, each a distinct
                               software P-256 key and subject (bench/issuance_load.py,
                               made before the runs; a server sees each at most once unless
                               it goes round the pool, which is logged); 5 runs of 2 s after
                               a 2 s warm-up, alternating with cfssl's
cfssl_sign_http_c8             the same CSRs as cfssl's JSON ({"certificate_request": PEM})
                               to `cfssl serve -db-config` POST /api/v1/cfssl/sign (answers
                               200 with "success":true), which stores every certificate in its
                               SQLite certdb (cfssl's own schema, WAL + synchronous=NORMAL as
                               udun's; bench/cfssl.py) before answering; one Go process with
                               GOMAXPROCS = cores; P-256 CA key in a file; a profile like
                               udun's client profile (digitalSignature, nonRepudiation,
                               clientAuth, OCSP/CRL/caIssuers URLs). Checked for both: one
                               answer in full (the certificate verifies under the CA, the
                               CSR's key and CN), and after the runs at least as many new rows
                               in each database as answers counted
issuance_http_c8_errors, cfssl_sign_http_c8_errors
                               answers not counted plus socket errors (should be 0)
issuance_http_vs_cfssl_ratio   issuance_http_c8 / cfssl_sign_http_c8 (target >= 1.5)
tsa_token_fastder              tokens/s built and signed in process by pkicore.fastder's fast path
                               (what `udun serve` answers with) with the CA's delegated TSA key on
                               the online token, a fresh serial and nonce each, cert_req; 6 s
tsa_token_asn1crypto           the same through the asn1crypto declarative builder the fast path
                               is tested against byte for byte, alternating with it in 6 rounds
tsa_token_fastder_speedup      fast path / asn1crypto: why pkicore.fastder exists (issue 10)
ocsp_answer_fastder            nonced OCSP answers/s built and signed in process by pkicore.fastder
                               (what the responder sends) with the CA's delegated responder key
                               on the online token, a fresh serial and nonce each; 6 s
ocsp_answer_builder            the same through cryptography's OCSPResponseBuilder the fast path
                               is tested against byte for byte, alternating with it in 6 rounds
ocsp_answer_fastder_speedup    fast path / builder: why pkicore.fastder has an OCSP part (issue 11)
http_verify_evidence_c8        req/s answered 200 with status TOTAL_PASSED and an evidence_id by
                               `udun serve` (gunicorn, one worker per core) when 8 concurrent
                               clients POST DISTINCT signed payments to /api/v1/verify over
                               loopback: verify, replay check, TSA time-stamp of the signature
                               (CA token) and the SQLite evidence record with its audit entry.
                               A tx_id is accepted once per signer, so every body is sent once in
                               the whole run, warm-up included: before each wrk run (not timed)
                               bench/payments.py signs a fresh batch with the client token key,
                               each with its own tx_id and signature (one sign_data template per
                               batch, the rest re-signed from it: sign_data alone makes ~40/s),
                               twice what the fastest run so far would use; the server keeps the
                               default 5-minute UDUN_SIGNING_WINDOW_MINUTES, as each batch is
                               signed seconds before it is sent. wrk sends a batch in order (Lua
                               `request`, one thread); if it runs out, that is logged and counted
                               as errors. 5 runs of 2 s, each with fresh connections, after a
                               3 s warm-up; load from wrk (one thread) if available, else Python
                               threads. gunicorn's sync workers answer `Connection: close`, so
                               each request is in fact a new TCP connection (accept and graceful
                               close included in the figure, as for OCSP and TSA). First (not timed):
                               one payment passes with evidence and is REPLAYED when sent again;
                               after: 8 evidence ids sampled from the answers are fetched back
                               (GET /api/v1/evidence/ID, admin key) and 2 of the bundles pass
                               pkicore.bundle_check.verify_bundle against our root
http_verify_evidence_c8_errors answers that were not 200/TOTAL_PASSED with an evidence_id, socket
                               errors, and requests left without a fresh body (should be 0)
http_verify_evidence_c8_postgresql
                               the same against a second `udun serve` whose CA home (`udun ca
                               init`, then `udun ca issue` for the same client key) is on a
                               throwaway PostgreSQL server (bench/pg.py: fsync and
                               full_page_writes on, synchronous_commit off = SQLite WAL with
                               synchronous=NORMAL: neither waits for a flush per commit);
                               its runs alternate with the SQLite ones (both servers up,
                               the idle one waiting)
http_verify_evidence_c8_postgresql_errors
                               as above (should be 0)
http_verify_evidence_postgresql_vs_sqlite_ratio
                               PostgreSQL / SQLite (target >= 0.8)
http_verify_evidence_c8_controls
                               the SQLite figure again, in runs alternating with the next: every
                               payment checked against its customer's account binding and
                               limits and its amount reserved for the day (udun's defaults;
                               the bench's customer has a daily limit no run reaches)
http_verify_evidence_c8_no_controls
                               a second `udun serve` on the same home with
                               UDUN_ACCOUNT_BINDING=false (no binding, no limits)
verify_controls_vs_none_ratio  controls / none (issue 13: target >= 0.85)
ocsp_cached_c8                 resp/s from the same server when 8 clients POST /ocsp
                               (application/ocsp-request) the same nonce-less request for one
                               good certificate (the responder pre-signs and caches those
                               answers); 3 runs of 2 s after a 1 s warm-up. Counted: HTTP 200
                               with OCSP responseStatus successful (checked in wrk's Lua); one
                               sample answer is parsed in full first (good, right serial, no
                               nonce, signature verifies under the responder certificate)
cfssl_ocspserve_c8             the same request form (POST, one SHA-1 CertID, no nonce) for a
                               certificate cfssl issued, to `cfssl ocspserve -responses`:
                               responses pre-signed by `cfssl ocsprefresh` (P-256 delegated
                               responder key in a file) for every certificate of its database
                               and written out by `cfssl ocspdump`, held in memory; runs
                               alternating with udun's; the sample answer checked alike
cfssl_ocspserve_c8_errors      answers not counted plus socket errors, warm-up included
ocsp_front_cached_c8           the same load against `udun serve-ocsp` (the keep-alive asyncio
                               front, one process per core; webapi/ocspfront.py), runs
                               alternating with cfssl's; answers checked alike
ocsp_cached_vs_cfssl_ratio     ocsp_front_cached_c8 / cfssl_ocspserve_c8 (target >= 1)
ocsp_nonce_c8                  the same with a fresh 16-octet nonce in every request, so every
                               answer is signed on the CA token: wrk rotates through 1000
                               pre-built requests (Lua `request`); a sample of answers is checked
                               as above and for the echoed nonce (RFC 8954)
openssl_ocsp_nonce_c8          the same nonce requests (1000 pre-built, each its own 16-octet
                               nonce) for a certificate of a software P-256 CA to `openssl ocsp
                               -index index.txt -CA -rsigner -rkey -port -nmin 60 -multi W`
                               (bench/openssl_peer.py: every answer signed as asked, P-256
                               delegated responder key in a file; one process answers one
                               request at a time, -multi W runs W = cores of them); runs
                               alternating with udun's; sample answers checked alike. The
                               responder is started afresh before every run (not timed): an
                               openssl ocsp process spins on a connection its client closed
                               before sending a request, and answers nobody after (openssl
                               issues 23934 and 31129), which wrk's end of run causes
openssl_ocsp_nonce_c8_errors   answers not counted plus socket errors, warm-up included
ocsp_front_nonce_c8            the nonce load against `udun serve-ocsp`, runs alternating with
                               openssl's (whose responders are stopped before each udun run:
                               left over, they spin and take a core)
ocsp_front_c8_errors           answers not counted plus socket errors in both front figures
ocsp_nonce_vs_openssl_ratio    ocsp_front_nonce_c8 / openssl_ocsp_nonce_c8 (target >= 0.5)
ocsp_c8_errors                 answers not counted plus socket errors in both udun OCSP
                               figures, warm-up included (should be 0)
tsa_c8                         resp/s when 8 clients POST RFC 3161 requests to /tsa, each with a
                               fresh imprint and 64-bit nonce (wrk rotates through 2000 pre-built
                               requests), so every answer is a token signed on the CA token; 3 runs
                               of 2 s after a 1 s warm-up. Counted: HTTP 200 whose TimeStampResp
                               status is granted with a token (checked in wrk's Lua); three sample
                               answers are checked in full first (pkicore.tsp.check_token with
                               imprint and nonce, TSA certificate validated to our root, distinct
                               serials, genTime now)
tsa_c8_errors                  answers not counted plus socket errors (should be 0)
nodes3_verify_evidence_total   req/s summed over three `udun serve` nodes (each its own
                               UDUN_HOME with a copy of the online token and online.pin only,
                               default workers: one per core each, so 3 x cores workers on
                               the machine) on the PostgreSQL home's database, each loaded at
                               the same time by its own wrk with 8 clients (24 in all: each
                               node gets what the one-node figure gives its node) sending
                               distinct payments as for http_verify_evidence_c8; 5 runs of
                               2 s after a 3 s warm-up; sampled evidence fetched back from
                               every node and checked
nodes3_verify_evidence_node{1,2,3}
                               req/s of each node
nodes3_verify_evidence_errors  answers not counted plus socket errors over the three
nodes3_vs_one_node_ratio       nodes3_verify_evidence_total / http_verify_evidence_c8_postgresql
nodes3_cpu_seconds             s of measured runs the CPU accounting below covers
nodes3_cpu_*                   cores' worth (CPU seconds per wall second; x nodes3_cpu_seconds
                               = CPU seconds) over those runs, user + system CPU of: each node
                               (_node1.._node3) and in it its gunicorn master (_nodeN_master)
                               and each worker (_nodeN_workerK, in pid order), from
                               /proc/PID/stat; all of udun's (_udun); PostgreSQL (_postgres),
                               split into its client backends (_postgres_backends) and the
                               postmaster, WAL writer, checkpointer... (_postgres_other); each
                               node's wrk (_wrk_nodeN, from its rusage) and all three (_wrk);
                               this process (_bench); everything else busy on the machine
                               (_other: /proc/stat busy time minus all the above: other
                               tenants); and _idle. The same per process (with pids) and a
                               one-line conclusion (CPU-bound or not, CPU per payment in udun
                               and in PostgreSQL) go to stderr
crl_build_100k                 s (median of 3) to build and sign the issuing CA's full CRL with
                               100,000 revoked entries through Revocation.publish (store query, entry
                               DER, token signature, CRL row stored), timed around that call in
                               a fresh child process (bench/crl_child.py, same UDUN_HOME, logged
                               in to the CA token first). The rows are written straight into
                               SQLite before (not timed): random 127-bit serials, 20%
                               keyCompromise (half with invalidityDate), 10% superseded, 10%
                               unspecified, 60% without a reason. Every CRL is checked: entry
                               count and signature (cryptography), and `openssl crl -verify`
openssl_gencrl_100k            s (median of 3, alternating with udun's) for `openssl ca -gencrl`
                               (the whole process, start-up included) on the same 100,000
                               entries in an index.txt, software P-256 CA key in a file, v2
                               with AKI and CRL number, same reasons and invalidity dates;
                               checked by counting its entries and its signature
crl_build_100k_vs_openssl_ratio
                               openssl_gencrl_100k / crl_build_100k: a TIME ratio turned so
                               that > 1 = udun faster, as every other ratio (target >= 1/1.5
                               = 0.667, i.e. udun's time <= 1.5 x openssl's)
crl_build_1m                   the same with 1,000,000 entries (900,000 rows more)
crl_build_1m_rss               MiB, peak RSS of the child that built the 1,000,000-entry CRL
                               (ru_maxrss: interpreter, imports and token included)
search_ca_list_revoked_10k     s (best of 3) for `udun ca list --status revoked --json --limit
                               1000`, the whole process, in a database of its own holding 10,000
                               certificates (1,000 revoked, 500 on hold, 500 expired); checked:
                               exactly the revoked serials
search_api_revoked_10k         s (best of 3) for the same set through the admin API (GET
                               /api/v1/certificates?status=revoked, 2 pages of 500, Flask's test
                               client in this process); checked alike

openssl_ecdsap256_{sign,verify} `openssl speed -seconds 3 ecdsap256` (one core), run last
*_per_openssl_verify           every rate figure over openssl_ecdsap256_verify of the same run:
                               the figure to compare between runs (issue 9: no drop over 10%)

Targets (issue 4): ocsp_cached_c8 >= 3000, ocsp_nonce_c8 >= 1000, crl_build_1m < 60 s with
crl_build_1m_rss < 1024 MiB.
Targets (issue 5): http_verify_evidence_c8 >= 500, tsa_c8 >= 1000.
Targets (issue 9): cms_verify_inprocess >= 2000 with every certificate's status.
Targets (issue 11): issuance_http_vs_cfssl_ratio >= 1.5, ocsp_cached_vs_cfssl_ratio >= 1,
ocsp_nonce_vs_openssl_ratio >= 0.5, crl_build_100k_vs_openssl_ratio >= 0.667,
http_verify_evidence_postgresql_vs_sqlite_ratio >= 0.8.
Targets (issue 12): search_ca_list_revoked_10k < 1, search_api_revoked_10k < 1.

Ratios matter more than absolute numbers: the machine is shared and noisy.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, TextIO

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.measure import log  # noqa: E402  (needs ROOT on sys.path; imports no udun code)

Figure = tuple[str, float, str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _format(value: float, unit: str) -> str:
    if unit in ("count", "cores"):
        return str(int(round(value)))
    if unit == "ratio":
        return f"{value:.3f}"
    if unit in ("core", "s"):
        return f"{value:.2f}"
    return f"{value:.1f}"


class Report:
    """Prints figures to the real stdout as they come, remembers failures."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.failed: list[str] = []
        self.values: dict[str, float] = {}
        self.units: dict[str, tuple[float, str]] = {}

    def emit(self, figures: list[Figure]) -> None:
        for name, value, unit in figures:
            self.values[name] = value
            self.units[name] = (value, unit)
            self.out.write(f"{name} {_format(value, unit)} {unit}\n")
        self.out.flush()

    def fail(self, what: str, e: Exception) -> None:
        self.failed.append(what)
        log(f"FAILED {what}: {type(e).__name__}: {e}")
        traceback.print_exc(file=sys.stderr)

    def ratios(self) -> None:
        """Every rate figure over openssl's ECDSA P-256 verify/s of the same run: comparable
        across runs on a busy or another machine (a drop of over 10% is a regression)."""
        yardstick = self.values.get("openssl_ecdsap256_verify")
        if not yardstick:
            return
        self.emit([(f"{name}_per_openssl_verify", value / yardstick, "ratio") for name, (value, unit)
                   in list(self.units.items()) if unit.endswith("/s") and not name.startswith(("openssl_", "cfssl_"))])

    def run(self, what: str, fn: Callable[[], list[Figure]]) -> None:
        log(f"measuring {what}")
        t0 = time.monotonic()
        try:
            self.emit(fn())
        except Exception as e:
            self.fail(what, e)
        log(f"{what} took {time.monotonic() - t0:.1f}s")


def _isolate_stdout() -> TextIO:
    """Keep the real stdout for figures; everything else that writes to fd 1 (libraries,
    child processes) goes to stderr instead."""
    sys.stdout.flush()
    real = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return real


GROUPS = ("inprocess", "peers", "server", "postgres", "controls", "nodes", "crl", "search")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="udun benchmarks (figures on stdout)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every measuring time (default 1)")
    p.add_argument("--no-wrk", action="store_true", help="use the Python load generator for HTTP")
    p.add_argument("--keep", action="store_true", help="keep the temporary UDUN_HOME")
    p.add_argument("--only", default=",".join(GROUPS),
                   help="comma-separated groups to run: inprocess; peers (issuance over HTTP against cfssl, "
                        "OCSP against cfssl ocspserve and openssl ocsp); server (evidence, OCSP, TSA); postgres "
                        "(evidence on PostgreSQL beside SQLite); nodes (three nodes on PostgreSQL); crl "
                        "(with openssl ca -gencrl); search (ca list and the admin API on 10,000 certificates) (default: all)")
    args = p.parse_args(argv)
    args.only = {g.strip() for g in args.only.split(",") if g.strip()}
    unknown = args.only - set(GROUPS)
    if unknown:
        p.error(f"unknown group(s) for --only: {', '.join(sorted(unknown))}")
    return args


def _measure(report: Report, fx: Any, work: Path, args: argparse.Namespace) -> None:
    from bench import figures, http_load, peers

    s = args.scale
    only = args.only
    if "inprocess" in only:
        report.run("token signing, EC P-256",
                   lambda: figures.token_sign(fx.ec_key, "ec_p256", fx.payload, 15 * s, 10))
        report.run("token signing, RSA-2048",
                   lambda: figures.token_sign(fx.rsa_key, "rsa2048", fx.payload, 15 * s, 10))
        report.run("in-process CMS verify",
                   lambda: figures.cms_verify(fx.ca, fx.chain_der, fx.cms_der, 10 * s))
        report.run("issuance", lambda: figures.issuance(fx.ca, fx.csr_der, 5 * s))
        report.run("TSA tokens in process, fast path vs asn1crypto",
                   lambda: figures.tsa_tokens(fx.ca, 6 * s, 6))
        report.run("nonced OCSP answers in process, fast path vs cryptography's builder",
                   lambda: figures.ocsp_answers(fx.ca, 6 * s, 6))
    wrk = None if args.no_wrk else http_load.find_wrk()
    cfssl = peers.setup_cfssl(report, work, os.environ["UDUN_BASE_URL"]) if "peers" in only else None
    # Before the server figures: cfssl's OCSP responses are signed for what it issued here.
    if "peers" in only:
        peers.issuance(report, fx, work, wrk, s, cfssl)
    pg = site = None
    try:
        if only & {"postgres", "nodes"}:
            pg, site = _postgres(report, fx, work)
        # The servers get both cores while this process only waits for wrk (and signs
        # payments between runs).
        if only & {"server", "peers", "postgres", "controls"}:
            _server_figures(report, fx, work, args, wrk, cfssl, site)
        if "nodes" in only and site is not None:
            _nodes(report, fx, work, args, wrk, pg, site)
    finally:
        if pg is not None:
            pg.stop()
    # After the servers: the CRL rows go straight into the database, past the OCSP cache.
    if "crl" in only:
        _crl_figures(report, fx, work)
    if "search" in only:
        from bench import search

        report.run("certificate search: the revoked 1,000 of 10,000 (CLI and admin API)",
                   lambda: search.figures(work))
    # The yardstick last, so that the machine's load while it runs is the load the figures saw.
    report.run("openssl speed ecdsap256 (1 core)", lambda: figures.openssl_speed(max(2, int(3 * s))))
    report.ratios()


def _postgres(report: Report, fx: Any, work: Path) -> tuple[Any, Any]:
    """A throwaway PostgreSQL server and a CA home on it; (None, None) if that fails."""
    from bench.nodes import PgSite
    from bench.pg import Postgres

    pg = Postgres()
    try:
        pg.start()
        return pg, PgSite.create(work, pg, fx.csr_der)
    except Exception as e:
        report.fail("PostgreSQL set-up", e)
        pg.stop()
        return None, None


def _server_figures(report: Report, fx: Any, work: Path, args: argparse.Namespace, wrk: str | None,
                    cfssl: Any, site: Any) -> None:
    """One `udun serve` (SQLite) for the evidence, OCSP and TSA figures, and beside it one
    on PostgreSQL for the evidence pair; stopped at the end whatever happens."""
    from bench import evidence_load, http_load, payments, peers, tsa_load
    from ca.banks import Banks

    s = args.scale
    only = args.only
    banks = Banks(fx.ca.store, fx.ca.clock)
    banks.add("bench", "the bench's bank", actor="bench")
    bank_key = banks.issue_key("bench", ["verify", "evidence:read"], actor="bench").text
    root_der = fx.chain_der[-1]
    log(f"starting udun serve (load average {os.getloadavg()[0]:.2f})")
    try:
        with http_load.Server(http_load.free_port(), work / "server.log") as server:
            log(f"server healthy on {server.base} ({os.cpu_count()} workers)")
            if only & {"server", "postgres", "controls"}:
                maker = payments.PaymentMaker(fx.ec_key, fx.cert_der, fx.chain_der)
                sqlite = evidence_load.EvidenceLoad(server, work, maker, root_der, bank_key, wrk, clients=8,
                                                    label="sqlite")
                if "postgres" in only:
                    _evidence_pair(report, fx, work, wrk, s, sqlite, site)
                elif "server" in only:
                    report.run("HTTP verify with evidence, 8 clients, distinct payments",
                               lambda: sqlite.figure(10 * s, 3 * s, segments=5))
                if "controls" in only:
                    _controls_pair(report, work, wrk, s, sqlite, maker, root_der, bank_key)
            if only & {"server", "peers"}:
                peers.ocsp(report, server, fx, work, wrk, s, cfssl, with_peers="peers" in only)
            if "server" in only:
                tsa = tsa_load.TsaLoad(server, work, root_der, wrk, clients=8)
                report.run("TSA with nonce, 8 clients", lambda: tsa.figure(6 * s, 1 * s, segments=3))
        log("server stopped")
    except Exception as e:
        report.fail("server", e)


def _evidence_pair(report: Report, fx: Any, work: Path, wrk: str | None, s: float, sqlite: Any, site: Any) -> None:
    """http_verify_evidence_c8 on SQLite and on PostgreSQL, runs alternating."""
    import contextlib

    from bench import evidence_load, peers

    def pg_side(stack: contextlib.ExitStack) -> Any:
        if site is None:
            raise RuntimeError("no PostgreSQL home (see the set-up error above)")
        server = stack.enter_context(site.server(site.home, "server-postgresql", work))
        log(f"udun serve on PostgreSQL healthy on {server.base}")
        loads["postgresql"] = evidence_load.EvidenceLoad(server, work, site.maker(fx), site.chain_der[-1], site.bank_key,
                                                         wrk, clients=8, tag="postgresql", label="postgresql")
        side = loads["postgresql"].side()
        side.also["PostgreSQL"] = site.postgres_cpu
        return side

    loads: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        u, p = peers.pair(report, "HTTP verify with evidence, 8 clients, distinct payments: SQLite vs PostgreSQL",
                          sqlite.side, pg_side, 10 * s, 3 * s, 5, stack)
        for load, result in ((sqlite, u), (loads.get("postgresql"), p)):
            if load is None or result is None:
                continue
            try:
                report.emit(load.figures(result))
            except Exception as e:
                report.fail(load.name, e)
    if u is not None and p is not None:
        report.emit(peers.ratio("http_verify_evidence_postgresql_vs_sqlite_ratio", p.rate, u.rate))


def _controls_pair(report: Report, work: Path, wrk: str | None, s: float, with_controls: Any, maker: Any,
                   root_der: bytes, bank_key: str) -> None:
    """http_verify_evidence_c8 with the payment controls (udun's defaults: account binding,
    limits) against a second `udun serve` on the same home without them
    (UDUN_ACCOUNT_BINDING=false), runs alternating; one PaymentMaker feeds both sides, so
    no tx_id is sent twice."""
    import contextlib

    from bench import evidence_load, http_load, peers

    loads: dict[str, Any] = {}

    def bare_side(stack: contextlib.ExitStack) -> Any:
        server = stack.enter_context(http_load.Server(http_load.free_port(), work / "server-no-controls.log",
                                                      {"UDUN_ACCOUNT_BINDING": "false"}))
        log(f"udun serve without payment controls healthy on {server.base}")
        loads["bare"] = evidence_load.EvidenceLoad(server, work, maker, root_der, bank_key, wrk, clients=8,
                                                   tag="no_controls", label="no-controls")
        return loads["bare"].side()

    with contextlib.ExitStack() as stack:
        u, p = peers.pair(report, "HTTP verify with evidence, 8 clients: with the payment controls vs without",
                          with_controls.side, bare_side, 10 * s, 3 * s, 5, stack)
    if u is not None and p is not None:
        report.emit([("http_verify_evidence_c8_controls", u.rate, "req/s"),
                     ("http_verify_evidence_c8_no_controls", p.rate, "req/s")])
        report.emit(peers.ratio("verify_controls_vs_none_ratio", u.rate, p.rate))


def _nodes(report: Report, fx: Any, work: Path, args: argparse.Namespace, wrk: str | None, pg: Any,
           site: Any) -> None:
    from bench.nodes import ThreeNodes

    s = args.scale
    three = ThreeNodes(site, pg, work, site.maker(fx), wrk)
    report.run("three udun serve nodes on one PostgreSQL, 8 clients each",
               lambda: three.figures(10 * s, 3 * s, 5, report.values.get("http_verify_evidence_c8_postgresql")))


def _crl_figures(report: Report, fx: Any, work: Path) -> None:
    from bench import crl

    bench = crl.CrlBench.create(fx.ca, work)
    report.run("CRL build, 100,000 entries (child process), and openssl ca -gencrl on the same, alternating",
               bench.pair_100k)
    report.run("CRL build, 1,000,000 entries (child process)", bench.build_1m)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so that the server is stopped and the home removed."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    out = _isolate_stdout()
    report = Report(out)
    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="udun-bench-"))
    # Default settings only (signing window, challenges, TSA policy, admin key...).
    for var in [v for v in os.environ if v.startswith("UDUN_")] + ["SOFTHSM2_CONF"]:
        os.environ.pop(var, None)
    # Before any udun import: the token library reads SOFTHSM2_CONF (derived from
    # UDUN_HOME) once per process, and the certificates carry UDUN_BASE_URL.
    os.environ["UDUN_HOME"] = str(home / "home")
    os.environ["UDUN_BASE_URL"] = f"http://127.0.0.1:{_free_port()}"
    work = home / "work"
    work.mkdir(parents=True)
    token_mod: Any = None
    try:
        report.emit([("cpu_count", float(os.cpu_count() or 1), "cores")])
        load1 = os.getloadavg()[0]
        log(f"load average {load1:.2f}" + (" (the machine is busy: figures will be low and noisy)"
                                            if load1 > 0.5 else ""))
        from bench import fixture
        from keystore import token as token_mod

        try:
            fx = fixture.build()
        except Exception as e:
            log(f"FAILED set-up: {type(e).__name__}: {e}")
            traceback.print_exc(file=sys.stderr)
            report.failed.append("set-up")
        else:
            _measure(report, fx, work, args)
    finally:
        if token_mod is not None:
            token_mod.close_all()
        if args.keep:
            log(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    log(f"done in {time.monotonic() - started:.0f}s"
        + (f"; FAILED: {', '.join(report.failed)}" if report.failed else ""))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
