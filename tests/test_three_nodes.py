"""Issue 11 point 2: several stateless `udun serve` nodes on one database.

One CA home (`udun ca init`); its database is the shared one, handed to every process
explicitly. Three bank-facing nodes, each in a home of its own with its own copy of the
online token and secrets/online.pin (tests/nodes.py), and two admin services where the
CA key is: one on the CA home, one on a second operator home with copies of the CA
tokens. Under bounded concurrent load the tests show, in file order (module fixture):

1. issuance through both admin services at once: every serial distinct; CRLs published
   from several processes at once while every node is read: CRL numbers distinct, without
   gaps and strictly increasing in publication (commit) order, thisUpdate never earlier
   for a higher number, and never going back across nodes (one CRL per number);
2. one payment reaching every node at the same moment: exactly one evidence record, the
   other nodes answering REPLAYED with its id;
3. a hold made where the CA key is: every node's OCSP (and verify) says so on the first
   request after the hold returns, and good again after the release;
4. SIGKILL of one node mid-load: every answered evidence id has its record, and every
   unanswered payment is either unrecorded or recorded once (a resubmission says which);
5. one audit chain over all of it, which `udun audit verify` accepts, with one entry per
   evidence record and TSA serial numbers unique across the nodes sharing the TSA key.

Both engines: SQLite runs share the CA home's WAL-mode file between the processes.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp as cocsp

from helpers import CUSTOMER, PIN, SAMPLE, SO_PIN, SoftwareKey, sample_tx, udun
from nodes import (Admin, Node, make_admin_home, make_node_home, running_admin, running_node,
                   shared_database_url)

NODES = 3
NODE_WORKERS = 2                   # two workers a node: races inside a node as well as between them
CLIENTS = 6                        # client threads of the SIGKILL load
ADMIN_KEY = "three-nodes-admin-key-0123456789abcdef-0123"
CERTIFICATES = 60                  # issued through the two admin services
CRL_PUBLICATIONS = 6               # `udun ca crl --new` runs, at most 3 at a time
SAME_PAYMENTS = 15                 # payments each sent to every node at once
KILL_PAYMENTS = 180                # distinct payments of the SIGKILL load
KILL_AFTER = 45                    # answered payments before the SIGKILL
HTTP_TIMEOUT = 30.0
# How soon a status change reaches every node's OCSP: immediately. Each node reads the
# database's status_version counter on every OCSP request (ca/ocsp.py, Responder.
# _current_version) and drops its pre-signed answers when it moved, so the first request
# that starts after `udun ca hold` returns (the change committed) is answered from the new
# status. No polling interval is involved (README "The flow" 5: the responder's
# pre-signed answers are refreshed); only HTTP caches in front of GET /ocsp, which the
# answers' max-age allows, can hold an older answer.
OCSP_REQUESTS_AFTER_CHANGE = 6     # the first this-many answers of each node after the change


# --- HTTP ---------------------------------------------------------------------------------

_CONNECTION_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException)


def _http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _verify(node: Node, cms: bytes, auth: dict[str, str]) -> dict[str, Any]:
    status, body = _http(f"{node.base}/api/v1/verify", cms, {"Content-Type": "application/pkcs7-mime", **auth})
    assert status == 200, (node.name, status, body[:500])
    return json.loads(body)  # type: ignore[no-any-return]


# --- the cluster --------------------------------------------------------------------------

@dataclass(frozen=True)
class Payment:
    tx_id: str
    cms: bytes


@dataclass
class Cluster:
    ca_home: Path
    db_url: str
    db: sa.Engine
    nodes: list[Node]
    admins: list[Admin]
    issuing: cx509.Certificate
    root: cx509.Certificate
    sign: Callable[[str, int], list[Payment]]
    alice: cx509.Certificate            # the certificate the status test holds
    bob: cx509.Certificate              # the load's signer, never held
    auth: dict[str, str]                # the bank's Authorization header (its key, made by the CLI)

    def run(self, home: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
        """`udun ARGS` where the CA key is, on the shared database."""
        proc = udun(*args, env={"UDUN_HOME": str(home), "UDUN_DATABASE_URL": self.db_url, "UDUN_CA_PIN": ""},
                    cwd=home)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def query(self, sql: str, **params: Any) -> list[Any]:
        with self.db.connect() as conn:
            return list(conn.execute(sa.text(sql), params))

    def issuing_authority_id(self) -> int:
        return int(self.query("SELECT id FROM authorities WHERE name = 'issuing'")[0][0])


def _engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    if url.startswith("sqlite"):
        from ca.storage.engine import sqlite_pragmas

        sa.event.listen(engine, "connect", sqlite_pragmas)      # busy_timeout: the nodes write too
    return engine


def _enroll(settings: Any, label: str, admin: Admin, chain_pem: bytes, ca_env: dict[str, str]) -> cx509.Certificate:
    """A client token in the session's home, its certificate issued through the admin API and
    bound to the cluster's customer on the CA's console (``ca_env``)."""
    from pkicore.algorithms import KeyType
    from signer import tokens

    tokens.keygen(settings, label, PIN, KeyType.EC_P256)
    csr = tokens.csr(settings, label, PIN, f"CN=Three nodes {label},O=udun tests,C=CN")
    status, body = _http(f"{admin.base}/api/v1/certificates", csr,
                         {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/pkcs10"})
    assert status == 201, body
    cert_pem = json.loads(body)["certificate_pem"].encode()
    bound = udun("customer", "bind", CUSTOMER, "--serial", json.loads(body)["serial"], env=ca_env)
    assert bound.returncode == 0, bound.stderr
    tokens.import_certificates(settings, label, PIN, cert_pem + chain_pem)
    return cx509.load_pem_x509_certificate(cert_pem)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, settings: Any) -> Iterator[Cluster]:
    from signer import tokens
    from signer.signing import sign_transaction

    root_dir = tmp_path_factory.mktemp("three-nodes")
    ca_home = root_dir / "ca"
    ca_home.mkdir(mode=0o700)
    init = udun("ca", "init", env={"UDUN_HOME": str(ca_home), "UDUN_CA_PIN": ""}, cwd=ca_home)
    assert init.returncode == 0, init.stderr
    db_url = shared_database_url(ca_home)
    ca_env = {"UDUN_HOME": str(ca_home), "UDUN_DATABASE_URL": db_url}
    made = udun("customer", "add", CUSTOMER, "--name", "三节点", "--account", SAMPLE["payer"]["account"], env=ca_env)
    assert made.returncode == 0, made.stderr
    admin_home = make_admin_home(ca_home, root_dir / "admin-2")
    node_homes = [make_node_home(ca_home, root_dir / f"node-{i}") for i in range(NODES)]
    # Client tokens first, keys after: creating a token re-initialises PKCS#11 in this process.
    for label in ("n3-alice", "n3-bob"):
        tokens.init(settings, label, PIN, SO_PIN)

    with contextlib.ExitStack() as stack:
        entering = threading.Lock()

        def start(cm: contextlib.AbstractContextManager[Any]) -> Any:
            value = cm.__enter__()            # waits for the process to answer /healthz
            with entering:                    # ExitStack is not thread-safe; its exit runs here
                stack.push(cm)
            return value

        # Side by side: one after another, each start would wait seconds for gunicorn.
        with ThreadPoolExecutor(NODES + 2) as pool:
            admin_futures = [pool.submit(start, running_admin(h, ADMIN_KEY, db_url)) for h in (ca_home, admin_home)]
            node_futures = [pool.submit(start, running_node(f"node-{i}", h, db_url, NODE_WORKERS,
                                                            {}))
                            for i, h in enumerate(node_homes)]
            admins = [f.result() for f in admin_futures]
            nodes = [f.result() for f in node_futures]
        ders = [_http(f"{nodes[0].base}/ca/{name}.crt") for name in ("issuing-ca", "root-ca")]
        assert all(status == 200 for status, _ in ders)
        issuing, root = (cx509.load_der_x509_certificate(der) for _, der in ders)
        chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (issuing, root))
        alice = _enroll(settings, "n3-alice", admins[0], chain_pem, ca_env)
        bob = _enroll(settings, "n3-bob", admins[1], chain_pem, ca_env)

        def sign(label: str, count: int) -> list[Payment]:
            # In this thread only: PKCS#11 sessions and threads do not mix (DESIGN.md).
            out = []
            for _ in range(count):
                tx_id = f"N3-{uuid.uuid4().hex[:24]}"
                out.append(Payment(tx_id, sign_transaction(settings, label, PIN, sample_tx(tx_id=tx_id))))
            return out

        db = _engine(db_url)
        stack.callback(db.dispose)
        made = udun("bank", "add", "three-nodes", env={"UDUN_HOME": str(ca_home), "UDUN_DATABASE_URL": db_url},
                    cwd=ca_home)
        assert made.returncode == 0, made.stderr
        key = udun("bank", "key", "add", "three-nodes", env={"UDUN_HOME": str(ca_home), "UDUN_DATABASE_URL": db_url},
                   cwd=ca_home)
        assert key.returncode == 0, key.stderr
        auth = {"Authorization": f"Bearer {key.stdout.decode().strip()}"}
        yield Cluster(ca_home, db_url, db, nodes, [*admins], issuing, root, sign, alice, bob, auth)


# --- 1. serials and CRL numbers -------------------------------------------------------------

@dataclass(frozen=True)
class SeenCrl:
    node: str
    number: int
    sha256: str
    this_update: Any


def _crl_of(node: Node, issuing: cx509.Certificate) -> tuple[int, cx509.CertificateRevocationList, bytes]:
    status, der = _http(f"{node.base}/crl/issuing-ca.crl")
    assert status == 200, (node.name, status)
    crl = cx509.load_der_x509_crl(der)
    key = issuing.public_key()
    assert isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey))
    assert crl.is_signature_valid(key), node.name                         # signed by the issuing CA
    return crl.extensions.get_extension_for_class(cx509.CRLNumber).value.crl_number, crl, der


def test_serials_unique_and_crl_numbers_increase_across_nodes(cluster: Cluster) -> None:
    from pkicore.x509build import build_csr, parse_name

    csrs = [build_csr(SoftwareKey(), parse_name(f"CN=Three nodes load {i},O=udun tests,C=CN"))
            for i in range(CERTIFICATES)]
    seen: list[SeenCrl] = []
    first_round = threading.Event()
    stop = threading.Event()

    def poll_crls() -> None:
        # One reader going round the nodes: each fetch starts after the one before it ended,
        # so the numbers it sees, whatever the node, may never go down.
        while True:
            last_round = stop.is_set()
            for node in cluster.nodes:
                number, crl, der = _crl_of(node, cluster.issuing)
                seen.append(SeenCrl(node.name, number, hashlib.sha256(der).hexdigest(),
                                    crl.last_update_utc))
            first_round.set()
            if last_round:
                return

    def issue(i: int) -> str:
        admin = cluster.admins[i % len(cluster.admins)]
        status, body = _http(f"{admin.base}/api/v1/certificates", csrs[i],
                             {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/pkcs10"})
        assert status == 201, body
        return str(json.loads(body)["serial"])

    homes = [cluster.ca_home, cluster.admins[1].home]

    def publish(i: int) -> int:
        out = cluster.run(homes[i % 2], "ca", "crl", "--new", "-o", os.devnull)
        found = re.search(rb"CRL number (\d+)", out.stderr)
        assert found, out.stderr
        return int(found.group(1))

    with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(6) as issuers, ThreadPoolExecutor(3) as publishers:
        polling = reader.submit(poll_crls)
        try:
            assert first_round.wait(60), "no CRL read from the nodes"    # the numbers before any new CRL
            issued = issuers.map(issue, range(CERTIFICATES))
            published = publishers.map(publish, range(CRL_PUBLICATIONS))
            serials, numbers = list(issued), list(published)
        finally:
            stop.set()                                                   # one more round, then it ends
        polling.result()

    # Unique serials: every answer a different serial, each an issued certificate in the database.
    assert len(set(serials)) == CERTIFICATES, Counter(serials).most_common(3)
    stored = {r[0]: r[1] for r in cluster.query("SELECT serial, state FROM certificates")}
    assert all(stored.get(s) == "issued" for s in serials)

    # Each publishing process got a number of its own.
    assert len(set(numbers)) == CRL_PUBLICATIONS, numbers
    issuing_id = cluster.issuing_authority_id()
    crls = cluster.query("SELECT number, this_update, der FROM crls WHERE authority_id = :a ORDER BY number",
                         a=issuing_id)
    stored_numbers = [int(r[0]) for r in crls]
    assert set(numbers) <= set(stored_numbers)
    assert stored_numbers == list(range(stored_numbers[0], stored_numbers[-1] + 1))   # no gap, no repeat
    # Publication order is commit order, which the audit log's sequence records (the CRL's
    # entry is appended in its transaction): numbers strictly increasing along it.
    audited = [json.loads(r[0])["number"] for r in cluster.query(
        "SELECT details FROM audit_log WHERE action = 'crl' AND subject = :s ORDER BY seq",
        s=f"authority {issuing_id}")]
    assert audited == sorted(set(audited)) and set(numbers) <= set(audited), audited
    # A higher number never claims an earlier issue time (RFC 5280 §5.1.2.4, §5.2.3).
    this_updates = [cx509.load_der_x509_crl(bytes(r[2])).last_update_utc for r in crls]
    assert this_updates == sorted(this_updates), list(zip(stored_numbers, this_updates))

    # Across the nodes: never back, one CRL per number, and at the end every node has the newest.
    observed = [s.number for s in seen]
    assert observed == sorted(observed), [(s.node, s.number) for s in seen]
    by_number: dict[int, set[str]] = {}
    for s in seen:
        by_number.setdefault(s.number, set()).add(s.sha256)
    assert all(len(digests) == 1 for digests in by_number.values()), by_number
    stored_digest = {int(r[0]): hashlib.sha256(bytes(r[2])).hexdigest() for r in crls}
    assert all(stored_digest[n] == next(iter(d)) for n, d in by_number.items())
    assert len(by_number) >= 2                                           # it saw the numbers move
    assert [s.number for s in seen[-NODES:]] == [stored_numbers[-1]] * NODES


# --- 2. one payment at every node at once ---------------------------------------------------

def test_one_payment_at_every_node_at_once_is_recorded_once(cluster: Cluster) -> None:
    payments = cluster.sign("n3-bob", SAME_PAYMENTS)
    barrier = threading.Barrier(NODES, timeout=60)
    answers: dict[str, dict[str, dict[str, Any]]] = {p.tx_id: {} for p in payments}

    def send_all(node: Node) -> None:
        for p in payments:
            barrier.wait()                     # every node gets this payment at the same moment
            answers[p.tx_id][node.name] = _verify(node, p.cms, cluster.auth)

    with ThreadPoolExecutor(NODES) as pool:
        for done in [pool.submit(send_all, n) for n in cluster.nodes]:
            done.result()

    winners: Counter[str] = Counter()
    for p in payments:
        got = answers[p.tx_id]
        passed = [(name, a) for name, a in got.items() if a["status"] == "TOTAL_PASSED"]
        assert len(passed) == 1, {name: (a["status"], a.get("sub_indication")) for name, a in got.items()}
        winner, answer = passed[0]
        winners[winner] += 1
        evidence_id = answer["evidence_id"]
        assert evidence_id and answer["time_stamp"]
        for name, a in got.items():
            if name != winner:             # the others name the winner's record
                assert (a["status"], a["sub_indication"], a["evidence_id"], a["first_evidence_id"]) == \
                    ("TOTAL_FAILED", "REPLAYED", None, evidence_id), a
        rows = cluster.query("SELECT id FROM evidence WHERE tx_id = :t", t=p.tx_id)
        assert [r[0] for r in rows] == [evidence_id]
    print(f"first to store, by node: {dict(winners)}")


# --- 3. a status change reaches every node's OCSP ---------------------------------------------

def _ocsp_request(cert: cx509.Certificate, issuer: cx509.Certificate, nonce: bool) -> bytes:
    builder = cocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    if nonce:
        builder = builder.add_extension(cx509.OCSPNonce(os.urandom(16)), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def _signed_by(cert: cx509.Certificate, signature: bytes, data: bytes, algorithm: Any) -> None:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(algorithm))
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(signature, data, padding.PKCS1v15(), algorithm)


def _ocsp_answer(der: bytes, cert: cx509.Certificate, issuing: cx509.Certificate) -> str:
    """good / on_hold / revoked / unknown, from a response signed by a responder of the issuing CA."""
    resp = cocsp.load_der_ocsp_response(der)
    assert resp.response_status == cocsp.OCSPResponseStatus.SUCCESSFUL
    assert resp.serial_number == cert.serial_number
    responder = resp.certificates[0]
    responder.verify_directly_issued_by(issuing)
    assert cx509.ExtendedKeyUsageOID.OCSP_SIGNING in \
        responder.extensions.get_extension_for_class(cx509.ExtendedKeyUsage).value
    _signed_by(responder, resp.signature, resp.tbs_response_bytes, resp.signature_hash_algorithm)
    if resp.certificate_status == cocsp.OCSPCertStatus.GOOD:
        return "good"
    if resp.certificate_status == cocsp.OCSPCertStatus.REVOKED:
        return "on_hold" if resp.revocation_reason == cx509.ReasonFlags.certificate_hold else "revoked"
    return "unknown"


def _ocsp_round(cluster: Cluster, node: Node, cached_request: bytes) -> list[str]:
    """The node's answers about alice: the same nonce-less request by POST and by GET (the
    pre-signed, cached path; repeated so that both workers answer), and one with a nonce."""
    get_url = f"{node.base}/ocsp/" + urllib.parse.quote(base64.b64encode(cached_request).decode(), safe="")
    answers = []
    for i in range(OCSP_REQUESTS_AFTER_CHANGE):
        if i == OCSP_REQUESTS_AFTER_CHANGE - 1:
            status, der = _http(f"{node.base}/ocsp", _ocsp_request(cluster.alice, cluster.issuing, nonce=True),
                                {"Content-Type": "application/ocsp-request"})
        elif i % 2:
            status, der = _http(get_url)
        else:
            status, der = _http(f"{node.base}/ocsp", cached_request, {"Content-Type": "application/ocsp-request"})
        assert status == 200, (node.name, status)
        answers.append(_ocsp_answer(der, cluster.alice, cluster.issuing))
    return answers


@dataclass
class Sent:
    """One request of a load: which payment, which node, when, and what came back."""

    tx_id: str
    node: str
    started: float
    ended: float
    answer: dict[str, Any] | None = None
    http_status: int | None = None
    error: str | None = None


@dataclass
class Load:
    """Client threads sending distinct payments round-robin over the nodes, every answer kept."""

    nodes: list[Node]
    payments: list[Payment]
    clients: int
    auth: dict[str, str]
    sent: list[Sent] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def _client(self, i: int) -> None:
        for j, p in enumerate(self.payments[i::self.clients]):
            if self.stop.is_set():
                return
            node = self.nodes[(i + j) % len(self.nodes)]
            s = Sent(p.tx_id, node.name, time.monotonic(), 0.0)
            try:
                s.http_status, body = _http(f"{node.base}/api/v1/verify", p.cms,
                                            {"Content-Type": "application/pkcs7-mime", **self.auth})
                s.answer = json.loads(body)
            except _CONNECTION_ERRORS as e:       # a killed node: refused, reset or cut off
                s.error = type(e).__name__
            s.ended = time.monotonic()
            with self.changed:
                self.sent.append(s)
                self.changed.notify_all()

    def answered(self) -> list[Sent]:
        with self.changed:
            return [s for s in self.sent if s.answer is not None and s.answer.get("evidence_id")]

    def wait_answered(self, count: int, timeout: float = 60) -> None:
        with self.changed:
            ok = self.changed.wait_for(
                lambda: sum(1 for s in self.sent if s.answer and s.answer.get("evidence_id")) >= count, timeout)
        assert ok, f"only {len(self.answered())} answers in {timeout} s"

    @contextlib.contextmanager
    def running(self, *, to_the_end: bool = False) -> Iterator[Load]:
        """The clients run inside the block; on leaving it they stop after their current
        request, or with ``to_the_end`` once every payment was sent."""
        threads = [threading.Thread(target=self._client, args=(i,), name=f"client-{i}") for i in range(self.clients)]
        for t in threads:
            t.start()
        try:
            yield self
        except BaseException:
            self.stop.set()                   # the test failed: no point sending the rest
            raise
        finally:
            if not to_the_end:
                self.stop.set()
            for t in threads:
                t.join(timeout=120)
            assert not any(t.is_alive() for t in threads)


def test_status_change_reaches_every_node_at_once(cluster: Cluster) -> None:
    serial = format(cluster.alice.serial_number, "x")
    alice = cluster.sign("n3-alice", 3 * NODES)
    before, during, after = alice[:NODES], alice[NODES:2 * NODES], alice[2 * NODES:]
    cached_request = _ocsp_request(cluster.alice, cluster.issuing, nonce=False)
    background = Load(cluster.nodes, cluster.sign("n3-bob", 60), clients=2, auth=cluster.auth)

    with background.running():
        for node, p in zip(cluster.nodes, before):
            assert set(_ocsp_round(cluster, node, cached_request)) == {"good"}, node.name   # caches warm
            assert _verify(node, p.cms, cluster.auth)["status"] == "TOTAL_PASSED"

        cluster.run(cluster.ca_home, "ca", "hold", serial)             # committed when it returns
        held_at = time.monotonic()
        for node, p in zip(cluster.nodes, during):
            # Within the bound (immediately): the first answers after the change, no retry.
            assert _ocsp_round(cluster, node, cached_request) == ["on_hold"] * OCSP_REQUESTS_AFTER_CHANGE, node.name
            refused = _verify(node, p.cms, cluster.auth)
            assert (refused["status"], refused["sub_indication"], refused["evidence_id"]) == \
                ("INDETERMINATE", "TRY_LATER", None), refused
        print(f"every node on hold within {time.monotonic() - held_at:.2f} s of `ca hold` returning")

        cluster.run(cluster.ca_home, "ca", "release", serial)
        for node, p, q in zip(cluster.nodes, during, after):
            assert _ocsp_round(cluster, node, cached_request) == ["good"] * OCSP_REQUESTS_AFTER_CHANGE, node.name
            # Refused while held, so never recorded: the same payment passes now.
            assert _verify(node, p.cms, cluster.auth)["status"] == "TOTAL_PASSED"
            assert _verify(node, q.cms, cluster.auth)["status"] == "TOTAL_PASSED"

    # The other signer's payments went on passing on every node throughout.
    assert background.sent and all(s.http_status == 200 and s.answer and s.answer["status"] == "TOTAL_PASSED"
                                   for s in background.sent), [s for s in background.sent if s.error][:3]


# --- 4. SIGKILL of one node mid-load ----------------------------------------------------------

def test_sigkill_of_one_node_mid_load_loses_nothing_answered(cluster: Cluster) -> None:
    from pkicore.bundle_check import verify_bundle
    from pkicore.clock import system_clock

    payments = cluster.sign("n3-bob", KILL_PAYMENTS)
    victim, live = cluster.nodes[-1], cluster.nodes[:-1]
    load = Load(cluster.nodes, payments, CLIENTS, cluster.auth)
    with load.running(to_the_end=True):
        load.wait_answered(KILL_AFTER)
        killed_at = time.monotonic()
        victim.kill()                                 # master and workers, mid-request
    sent = list(load.sent)
    assert len(sent) == KILL_PAYMENTS

    answered = [s for s in sent if s.answer is not None and s.answer.get("evidence_id")]
    before_kill = [s for s in answered if s.ended < killed_at]
    assert any(s.node == victim.name for s in before_kill)           # the victim had answered some
    assert any(s.started > killed_at for s in answered)
    assert len(answered) < KILL_PAYMENTS                              # killed mid-load, not after
    # Only the victim failed, and only at the connection level; the live nodes answered 200
    # TOTAL_PASSED to every distinct payment.
    assert any(s.error for s in sent if s.node == victim.name)
    for s in sent:
        if s.node != victim.name:
            assert s.http_status == 200 and s.answer and s.answer["status"] == "TOTAL_PASSED", s
        else:
            assert s.error is not None or (s.http_status == 200 and s.answer and s.answer["evidence_id"]), s

    # Nothing answered is lost: each evidence id has its record, for its payment.
    ids = {s.answer["evidence_id"]: s.tx_id for s in answered if s.answer}
    stored = dict(cluster.query("SELECT id, tx_id FROM evidence WHERE tx_id LIKE 'N3-%'"))
    missing = {i: t for i, t in ids.items() if stored.get(i) != t}
    assert not missing, missing
    # An answered record of the victim is whole: its bundle, served by a live node, verifies.
    roots = [cluster.root.public_bytes(serialization.Encoding.DER)]
    for s in [s for s in before_kill if s.node == victim.name][:3]:
        assert s.answer
        status, bundle = _http(f"{live[0].base}/api/v1/evidence/{s.answer['evidence_id']}",
                               headers=cluster.auth)
        assert status == 200
        verdict = verify_bundle(bundle, roots, system_clock())
        assert verdict.ok, verdict.problems

    # Every payment the load did not get an answer for (sent to the dead node, or never
    # sent) is resubmitted to a live node: either it was never stored (it passes now) or
    # the victim committed it just before dying (REPLAYED, naming a stored record). So each
    # payment ends with exactly one record, none half-written.
    unanswered = [p for p in payments if p.tx_id not in set(ids.values())]
    resubmitted: list[str] = []
    for p in unanswered:
        again = _verify(live[0], p.cms, cluster.auth)
        resubmitted.append(again["sub_indication"] or again["status"])
        if again["status"] == "TOTAL_PASSED":
            assert again["evidence_id"]
        else:
            assert again["sub_indication"] == "REPLAYED" and again["first_evidence_id"] in stored, again
    for p in payments:
        rows = cluster.query("SELECT id FROM evidence WHERE tx_id = :t", t=p.tx_id)
        assert len(rows) == 1, (p.tx_id, rows)
    print(f"{len(before_kill)} answered before the kill, {len(answered) - len(before_kill)} after, "
          f"connection errors at {victim.name}: {dict(Counter(s.error for s in sent if s.error))}, "
          f"{len(unanswered)} resubmitted: {dict(Counter(resubmitted))}")


# --- 5. one audit chain -------------------------------------------------------------------

def test_one_audit_chain_verifies(cluster: Cluster) -> None:
    proc = cluster.run(cluster.ca_home, "audit", "verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Every record of every node is in that one chain, in its own transaction's entry.
    recorded = cluster.query("SELECT COUNT(*) FROM evidence")[0][0]
    entries = cluster.query("SELECT COUNT(*) FROM audit_log WHERE action = 'verify' AND subject LIKE 'ev_%'")[0][0]
    assert recorded == entries and recorded > 0, (recorded, entries)
    # The nodes share one TSA key: its serial numbers stay unique across them (RFC 3161 §2.4.2).
    serials = [json.loads(r[0])["time_stamp_serial"] for r in cluster.query(
        "SELECT details FROM audit_log WHERE action = 'verify' AND subject LIKE 'ev_%'")]
    assert len(set(serials)) == len(serials) == recorded
