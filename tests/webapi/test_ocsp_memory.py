"""Issue 10: the OCSP responder's memory stays bounded under 50,000 distinct serials.

A real `udun serve` with one gunicorn worker and UDUN_OCSP_CACHE_SIZE=1000 is asked about
50,000 distinct random 126-bit serials (unknown to the CA) plus the issued certificates
over and over, all nonce-less (the shape the responder caches). The worker's VmRSS is read
from /proc after a warm-up and at the end: it must not grow with the number of distinct
requests. The old responder kept a pre-signed answer per distinct request, unknown
serials included: about 1.1 KB each, some 50 MB for the 45,000 after the warm-up.
"""
from __future__ import annotations

import http.client
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from asn1crypto import ocsp, x509

from helpers import running_server

CACHE_SIZE = 1000
DISTINCT = 50_000            # distinct random serials, none of them ours
GOOD_EVERY = 100             # every 100th request also asks an issued certificate
WARMUP = 5_000               # requests before the first RSS reading
THREADS = 4                  # client threads, each with its own HTTP connection
MAX_GROWTH_KB = 12 * 1024    # unbounded caching would add ~50 MB after the warm-up
REQUEST_TYPE = "application/ocsp-request"


# --- requests, built as DER by hand (asn1crypto takes ~0.5 ms a request) -----------------

def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _integer(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


_SHA1 = _tlv(0x30, _tlv(0x06, bytes.fromhex("2b0e03021a")) + _tlv(0x05, b""))   # AlgorithmIdentifier sha1


def _request(name_hash: bytes, key_hash: bytes, serial: int) -> bytes:
    """A nonce-less OCSPRequest for one SHA-1 CertID (RFC 6960 §4.1.1)."""
    cert_id = _tlv(0x30, _SHA1 + _tlv(0x04, name_hash) + _tlv(0x04, key_hash) + _integer(serial))
    return _tlv(0x30, _tlv(0x30, _tlv(0x30, _tlv(0x30, cert_id))))   # OCSPRequest/TBSRequest/requestList/Request


# --- the worker process ------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (no /proc/<pid>/task/*/children here)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:                   # field 4, ppid, after "(comm) state"
            kids.append(int(stat.parent.name))
    return kids


def _worker(arbiter: int) -> int:
    deadline = time.monotonic() + 30
    while True:
        kids = _children(arbiter)
        if len(kids) == 1:
            return kids[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"expected one gunicorn worker under {arbiter}, found {kids}")
        time.sleep(0.2)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (proc(5): fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


# --- the client ----------------------------------------------------------------------------

class _Client:
    """POST /ocsp from a few threads, each on its own http.client connection (gunicorn's
    sync worker closes it after every answer; http.client opens it again)."""

    def __init__(self, base: str) -> None:
        url = urlsplit(base)
        self.host, self.port = url.hostname or "127.0.0.1", url.port
        self.local = threading.local()

    def post(self, body: bytes) -> bytes:
        for attempt in (1, 2):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                conn.request("POST", "/ocsp", body, {"Content-Type": REQUEST_TYPE})
                resp = conn.getresponse()
                data = resp.read()
            except (ConnectionError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
                continue
            if resp.status != 200 or resp.getheader("Content-Type") != "application/ocsp-response":
                raise AssertionError(f"POST /ocsp answered {resp.status} {resp.getheader('Content-Type')}")
            return data
        raise AssertionError("unreachable")


def _check(data: bytes, serial: int, expected: str) -> str | None:
    """None when ``data`` is a successful OCSPResponse with one SingleResponse about
    ``serial`` with status ``expected``; else what is wrong."""
    try:
        resp = ocsp.OCSPResponse.load(data)
        if resp["response_status"].native != "successful":
            return f"responseStatus {resp['response_status'].native}"
        singles = resp.basic_ocsp_response["tbs_response_data"]["responses"]
        if len(singles) != 1:
            return f"{len(singles)} SingleResponses"
        if singles[0]["cert_id"]["serial_number"].native != serial:
            return "the answer is about another serial"
        if singles[0]["cert_status"].name != expected:
            return f"status {singles[0]['cert_status'].name}, expected {expected}"
    except Exception as e:  # noqa: BLE001  garbage: report it
        return f"not an OCSPResponse: {type(e).__name__}: {e}"
    return None


def _verify_signature(data: bytes) -> None:
    """The BasicOCSPResponse verifies under the responder certificate it carries."""
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    basic = ocsp.OCSPResponse.load(data).basic_ocsp_response
    pub = cx509.load_der_x509_certificate(basic["certs"][0].dump()).public_key()
    tbs, sig = basic["tbs_response_data"].dump(), basic["signature"].native
    algo = basic["signature_algorithm"]
    digest = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[algo.hash_algo]
    if isinstance(pub, ec.EllipticCurvePublicKey):
        pub.verify(sig, tbs, ec.ECDSA(digest))
    elif isinstance(pub, rsa.RSAPublicKey):
        pad = (padding.PSS(padding.MGF1(digest), digest.digest_size) if algo.signature_algo == "rsassa_pss"
               else padding.PKCS1v15())
        pub.verify(sig, tbs, pad, digest)
    else:
        pytest.fail(f"unexpected responder key {type(pub).__name__}")


# --- the test ------------------------------------------------------------------------------

def test_rss_stays_bounded_under_50000_distinct_serials(ca, enrolled, home: Path) -> None:  # type: ignore[no-untyped-def]
    from pkicore.ocsp import build_request, issuer_hashes

    issuer = x509.Certificate.load(ca.chain_der()[0])
    name_hash, key_hash = issuer_hashes(issuer, "sha1")
    issued = [x509.Certificate.load(e.cert_der) for e in enrolled.values()]
    for cert in issued:         # the hand-made DER is what the library would send
        assert _request(name_hash, key_hash, cert.serial_number) == build_request(cert, issuer)
    good = {int(c.serial_number) for c in issued}

    randoms: set[int] = set()
    while len(randoms) < DISTINCT:
        serial = (1 << 125) | secrets.randbits(125)             # 126 bits, positive
        if serial not in good:
            randoms.add(serial)
    plan: list[tuple[bytes, int, str]] = []
    good_list = sorted(good)
    for i, serial in enumerate(randoms):
        plan.append((_request(name_hash, key_hash, serial), serial, "unknown"))
        if i % GOOD_EVERY == 0:
            g = good_list[(i // GOOD_EVERY) % len(good_list)]
            plan.append((_request(name_hash, key_hash, g), g, "good"))

    with running_server(home, workers=1, extra_env={"UDUN_OCSP_CACHE_SIZE": str(CACHE_SIZE)}) as (base, proc):
        worker = _worker(proc.pid)
        client = _Client(base)
        errors: list[str] = []
        good_answers: dict[int, set[bytes]] = {g: set() for g in good}
        samples: dict[str, bytes] = {}
        lock = threading.Lock()

        def one(item: tuple[bytes, int, str]) -> None:
            body, serial, expected = item
            data = client.post(body)
            problem = _check(data, serial, expected)
            with lock:
                if problem is not None:
                    errors.append(f"serial {serial:x} ({expected}): {problem}")
                samples.setdefault(expected, data)
                if expected == "good":
                    good_answers[serial].add(data)

        def run(items: list[tuple[bytes, int, str]]) -> float:
            started = time.perf_counter()
            with ThreadPoolExecutor(THREADS) as pool:
                for _ in pool.map(one, items):
                    pass
            return time.perf_counter() - started

        rss_start = _rss_kb(worker)
        cpu_start = _cpu_seconds(worker)
        warm_secs = run(plan[:WARMUP])
        rss_warm = _rss_kb(worker)
        readings = [(WARMUP, rss_warm)]
        secs = warm_secs
        for lo, hi in ((WARMUP, len(plan) // 2), (len(plan) // 2, len(plan))):
            secs += run(plan[lo:hi])
            readings.append((hi, _rss_kb(worker)))
        rss_end = readings[-1][1]
        cpu = _cpu_seconds(worker) - cpu_start
        assert _worker(proc.pid) == worker, "the gunicorn worker was replaced during the run"

    growth = rss_end - rss_warm
    figures = (f"{len(plan)} requests ({DISTINCT} distinct unknown serials, {len(plan) - DISTINCT} for "
               f"{len(good)} issued ones) in {secs:.1f} s, {len(plan) / secs:.0f}/s; worker CPU {cpu:.1f} s, "
               f"{cpu / len(plan) * 1e3:.2f} ms a request (each unknown answer is signed); worker {worker} "
               f"VmRSS start {rss_start} kB, " + ", ".join(f"after {n} {kb} kB" for n, kb in readings)
               + f"; growth after the warm-up {growth} kB (bound {MAX_GROWTH_KB} kB)")
    print("\n" + figures)
    assert not errors, f"{len(errors)} bad answers, e.g. {errors[:5]}; {figures}"
    assert set(samples) == {"unknown", "good"}
    for data in samples.values():
        _verify_signature(data)
    # The bound is not bought by dropping the cache: each issued certificate got one
    # pre-signed answer, repeated.
    assert all(len(a) == 1 for a in good_answers.values()), \
        f"answers per issued serial: {[len(a) for a in good_answers.values()]}; {figures}"
    assert growth < MAX_GROWTH_KB, f"the OCSP worker grew by {growth} kB: {figures}"
