"""The evidence figure: POST /api/v1/verify from 8 clients, a distinct signed payment each time.

An answer counts when it is HTTP 200 with status TOTAL_PASSED and an evidence_id: the
server verified the CMS, checked replay, time-stamped the signature with its TSA (one
signature on the CA token) and stored the record with its audit entry in its database. A
payment is accepted once per signer and tx_id, so no body is sent twice in a bench run,
warm-up included: before each wrk run (not timed) bench/payments.py signs a fresh batch
with the client token key, twice what the fastest run so far would use. The server keeps
the default 5-minute signing window: each batch is signed seconds before it is sent.
wrk sends a batch in order from a Lua `request` (one wrk thread, so one Lua state); if it
runs out, the thread stops (the run's remaining time then counts with nothing passed), it is
logged, and the request left without a body counts as an error. Afterwards (not timed) a sample of evidence ids from the answers is fetched back
with the admin key, and bundles are checked in full by pkicore.bundle_check.verify_bundle.
"""
from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.http_load import WRK_TAIL, LoadResult, Server, Side, load_python, load_wrk, measure_sides
from bench.measure import log
from bench.payments import PaymentMaker, check_equivalent

VERIFY_PATH = "/api/v1/verify"
CONTENT_TYPE = "application/pkcs7-mime"
PASSED = re.compile(rb'"status"\s*:\s*"TOTAL_PASSED"')
EVIDENCE_ID = re.compile(rb'"evidence_id"\s*:\s*"(ev_\w+)"')
FIRST_GUESS = 500.0     # req/s the warm-up batch is sized for (the target) until a run shows more
SAMPLE_EVERY = 200      # keep the evidence id of every 200th counted answer ...
SAMPLE_KEEP = 4         # ... at most 4 per run
FETCH = 8               # evidence ids fetched back after the figure
BUNDLES = 2             # of which this many bundles are checked in full (first and last)

# The body file holds records: 8 decimal digits of length, then that many bytes of CMS.
# (%(body)s is the body file's name as a Lua string literal.)
READ_RECORDS = r"""
local f = assert(io.open(%(body)s, "rb"))
local all = f:read("*all")
f:close()
local bodies = {}
local pos = 1
while pos <= #all do
  local size = tonumber(all:sub(pos, pos + 7))
  bodies[#bodies + 1] = all:sub(pos + 8, pos + 7 + size)
  pos = pos + 8 + size
end
all = nil
"""

SCRIPT = READ_RECORDS + r"""local headers = {["Content-Type"] = "%(ctype)s", ["Authorization"] = "Bearer %(key)s"}
local n = 0
local seen, kept = 0, 0
exhausted = 0
sample = ""
wrk.method = "POST"

function request()
  if n >= #bodies then
    -- never a body twice: stop; what is still asked for counts as an error
    exhausted = exhausted + 1
    wrk.thread:stop()
    return wrk.format("GET", "/healthz")
  end
  n = n + 1
  return wrk.format("POST", nil, headers, bodies[n])
end

function ok(status, body)
  if status ~= 200 or string.find(body, '"status"%%s*:%%s*"TOTAL_PASSED"') == nil then
    return false
  end
  local id = string.match(body, '"evidence_id"%%s*:%%s*"(ev_%%w+)"')
  if id == nil then
    return false
  end
  seen = seen + 1
  if seen %% %(every)d == 1 and kept < %(keep)d then
    sample = sample .. " " .. id
    kept = kept + 1
  end
  return true
end
"""


def _post(base: str, body: bytes, key: str) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(base + VERIFY_PATH, data=body, headers={"Content-Type": CONTENT_TYPE,
                                                                         "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(json.loads(resp.read()))
    except urllib.error.HTTPError as e:
        return e.code, dict(json.loads(e.read() or b"{}"))


def _describe(answer: dict[str, Any]) -> str:
    return f"{answer.get('status')} {answer.get('sub_indication')} {answer.get('message') or answer.get('detail')}"


@dataclass
class EvidenceLoad:
    """The evidence figure against one running server, as the bank whose key is ``bank_key``
    (scopes verify and evidence:read).

    ``tag`` tells apart the loads of one bench run (SQLite, PostgreSQL, each of three
    nodes): their files in ``work`` and the figure's name (``http_verify_evidence_c8``
    + ``_`` + tag)."""

    server: Server
    work: Path
    maker: PaymentMaker
    root_der: bytes
    bank_key: str
    wrk: str | None
    clients: int = 8
    tag: str = ""
    label: str = "udun"
    best: float = 0.0                                   # the fastest run so far, req/s
    bodies: list[bytes] = field(default_factory=list)   # the batch for the next run
    sample: list[str] = field(default_factory=list)     # ids kept by the Python client

    @property
    def name(self) -> str:
        return f"http_verify_evidence_c{self.clients}" + (f"_{self.tag}" if self.tag else "")

    def side(self) -> Side:
        """Checks first (a fresh payment passes with evidence, is REPLAYED when sent again),
        then the Side that measure_sides runs: a fresh batch signed before each run."""
        check_equivalent(self.maker.cert_der, self.maker.chain_der)
        self._check_first()
        suffix = f"-{self.tag}" if self.tag else ""
        body_path = self.work / f"evidence-bodies{suffix}.bin"
        script = self.work / f"evidence{suffix}.lua"
        script.write_text(SCRIPT % {"body": json.dumps(str(body_path)), "ctype": CONTENT_TYPE, "key": self.bank_key,
                                    "every": SAMPLE_EVERY, "keep": SAMPLE_KEEP} + WRK_TAIL)

        def prepare(secs: float) -> None:
            n = math.ceil(2 * (self.best or FIRST_GUESS) * secs) + 100
            t0 = time.perf_counter()
            self.bodies = self.maker.batch(n)
            body_path.write_bytes(b"".join(b"%08d" % len(b) + b for b in self.bodies))
            log(f"{self.label}: signed {n} fresh payments in {time.perf_counter() - t0:.1f}s (for {secs:.0f}s at up "
                f"to {n / secs:.0f} req/s)")

        def run(secs: float) -> LoadResult:
            if self.wrk:
                result = load_wrk(self.wrk, self.server.base + VERIFY_PATH, script, self.clients, secs,
                                  label=self.label)
            else:
                self.sample = []
                result = load_python(self.server.port, VERIFY_PATH, self.bodies, CONTENT_TYPE, self._counts,
                                     self.clients, secs, once=True)
                result.sample = self.sample[::SAMPLE_EVERY][:SAMPLE_KEEP]
            self.best = max(self.best, result.rate)
            self.bodies = []
            return result

        return Side(self.label, self.server, run, prepare)

    def figures(self, result: LoadResult) -> list[tuple[str, float, str]]:
        """After the runs: a sample of the evidence ids fetched back and checked."""
        log(f"{self.name}: {result.rate:.1f} req/s, {result.errors} errors; {self.maker.made} payments signed")
        self.check_evidence(result.sample)
        return [(self.name, result.rate, "req/s"), (f"{self.name}_errors", float(result.errors), "count")]

    def figure(self, seconds: float, warmup: float, segments: int) -> list[tuple[str, float, str]]:
        (result,) = measure_sides([self.side()], seconds, warmup, segments)
        return self.figures(result)

    def _counts(self, status: int, data: bytes) -> bool:
        """The Python client's test, the same as the Lua `ok`."""
        m = EVIDENCE_ID.search(data)
        if status != 200 or PASSED.search(data) is None or m is None:
            return False
        self.sample.append(m.group(1).decode())   # list.append: safe from the client threads
        return True

    def _check_first(self) -> None:
        """One payment passes with evidence and a time-stamp; sent again it is REPLAYED."""
        (body,) = self.maker.batch(1)
        status, first = _post(self.server.base, body, self.bank_key)
        if status != 200 or first.get("status") != "TOTAL_PASSED" or not str(first.get("evidence_id")).startswith("ev_"):
            raise RuntimeError(f"the server does not keep evidence for a fresh payment: HTTP {status} {_describe(first)}")
        if not first.get("time_stamp"):
            raise RuntimeError("the answer carries no time_stamp")
        status, again = _post(self.server.base, body, self.bank_key)
        if again.get("status") == "TOTAL_PASSED" or again.get("sub_indication") != "REPLAYED":
            raise RuntimeError(f"the same payment sent twice was not refused as REPLAYED: HTTP {status} {_describe(again)}")
        log(f"evidence: a fresh payment got {first['evidence_id']} (time-stamp serial "
            f"{first['time_stamp'].get('serial')}); sent again: {again['status']} {again['sub_indication']}")

    def _fetch(self, evidence_id: str) -> bytes:
        req = urllib.request.Request(f"{self.server.base}/api/v1/evidence/{evidence_id}",
                                     headers={"Authorization": f"Bearer {self.bank_key}"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            if resp.headers.get_content_type() != "application/zip":
                raise RuntimeError(f"evidence {evidence_id}: {resp.headers.get('Content-Type')}, not a zip")
            return bytes(resp.read())

    def check_evidence(self, ids: list[str]) -> None:
        """Fetch a spread of the sampled ids back; check the first and last bundles in full."""
        from pkicore.bundle_check import verify_bundle

        ids = list(dict.fromkeys(ids))
        if not ids:
            raise RuntimeError("no evidence id was sampled from the answers")
        picked = [ids[round(i * (len(ids) - 1) / max(1, FETCH - 1))] for i in range(min(FETCH, len(ids)))]
        picked = list(dict.fromkeys(picked))
        full = {picked[0], picked[-1]} if BUNDLES > 1 else {picked[0]}
        t0 = time.perf_counter()
        for evidence_id in picked:
            try:
                data = self._fetch(evidence_id)
            except urllib.error.HTTPError as e:
                raise RuntimeError(f"GET /api/v1/evidence/{evidence_id} answered {e.code}") from e
            if evidence_id in full:
                verdict = verify_bundle(data, [self.root_der], datetime.now(UTC))
                if not verdict.ok or verdict.evidence_id != evidence_id:
                    raise RuntimeError(f"the bundle of {evidence_id} does not verify: "
                                       f"{'; '.join(verdict.problems) or verdict.evidence_id}")
        log(f"evidence: {len(picked)} of {len(ids)} sampled ids fetched back, {len(full)} bundles verified "
            f"against our root ({time.perf_counter() - t0:.1f}s)")
