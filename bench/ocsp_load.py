"""The OCSP figures: POST /ocsp on the running `udun serve` from 8 clients, and the same
loads against a peer's responder (cfssl ocspserve, openssl ocsp: bench/peers.py).

Cached: the same nonce-less request for one good certificate (the responder pre-signs
and caches those answers). Nonce: every request carries a fresh 16-octet nonce, so every
answer is signed on the token; wrk rotates through pre-built requests (a Lua `request`
function), each with its own nonce. An answer counts when it is HTTP 200 with OCSP
responseStatus successful; a sample is parsed and checked in full first (status good for
the right serial, the nonce echoed or absent, the signature under the responder
certificate the answer carries), for udun and the peers alike.
"""
from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.http_load import POST_FILE, WRK_TAIL, LoadResult, Side, Target, load_python, load_wrk, measure_sides
from bench.measure import log

OCSP_PATH = "/ocsp"
REQUEST_TYPE = "application/ocsp-request"
RESPONSE_TYPE = "application/ocsp-response"
NONCE_REQUESTS = 1000      # distinct nonce requests wrk cycles through
NONCE_BYTES = 16

# responseStatus successful: OCSPResponse ::= SEQUENCE { ENUMERATED 0, [0] ... } (RFC 6960 §4.2.1)
_OCSP_OK = r"""
function ok(status, body)
  if status ~= 200 or #body < 8 or body:byte(1) ~= 0x30 then
    return false
  end
  local b = body:byte(2)
  local off = 3
  if b >= 0x80 then
    off = 3 + (b - 0x80)
  end
  return body:byte(off) == 0x0A and body:byte(off + 1) == 1 and body:byte(off + 2) == 0
end
"""

CACHED_SCRIPT = POST_FILE

# Every request has the same length (same CertID, 16-octet nonce): cut the file in equal
# parts. `request` runs per request in each thread's own Lua state.
NONCE_SCRIPT = r"""
local f = assert(io.open(%(body)s, "rb"))
local all = f:read("*all")
f:close()
local size = %(size)d
local bodies = {}
for i = 1, #all, size do
  bodies[#bodies + 1] = all:sub(i, i + size - 1)
end
local headers = {["Content-Type"] = "%(ctype)s"}
local n = 0
wrk.method = "POST"

function request()
  n = n %% #bodies + 1
  return wrk.format("POST", nil, headers, bodies[n])
end
"""


def rotating_script(work: Path, name: str, bodies: list[bytes], ctype: str, check: str) -> Path:
    """Write equal-length request bodies into one file and the wrk Lua script that cycles
    through them (NONCE_SCRIPT cuts the file into equal parts), with ``check`` counting
    the answers; returns the script's path."""
    sizes = {len(b) for b in bodies}
    if len(sizes) != 1:
        raise RuntimeError(f"{name} requests differ in length ({sorted(sizes)}); the Lua script cuts equal parts")
    path = work / f"{name}.der"
    path.write_bytes(b"".join(bodies))
    script = work / f"{name}.lua"
    script.write_text(NONCE_SCRIPT % {"body": json.dumps(str(path)), "ctype": ctype, "size": len(bodies[0])}
                      + check + WRK_TAIL)
    return script


def ocsp_successful(status: int, data: bytes) -> bool:
    """What the Python load generator counts: the same test as the Lua `ok`."""
    if status != 200 or len(data) < 8 or data[0] != 0x30:
        return False
    off = 2 + (data[1] - 0x80 if data[1] >= 0x80 else 0)
    return data[off:off + 3] == b"\x0a\x01\x00"


def _post(url: str, body: bytes) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": REQUEST_TYPE})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read()


def _check_signature(basic: Any) -> None:
    """The BasicOCSPResponse verifies under the responder certificate it carries."""
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    certs = basic["certs"]
    if not len(certs):
        raise RuntimeError("the OCSP response carries no responder certificate")
    pub = cx509.load_der_x509_certificate(certs[0].dump()).public_key()
    tbs = basic["tbs_response_data"].dump()
    sig = basic["signature"].native
    if isinstance(pub, ec.EllipticCurvePublicKey):
        pub.verify(sig, tbs, ec.ECDSA(hashes.SHA256()))
    elif isinstance(pub, rsa.RSAPublicKey):
        pub.verify(sig, tbs, padding.PKCS1v15(), hashes.SHA256())
    else:
        raise RuntimeError(f"unexpected responder key {type(pub).__name__}")


def check_answer(data: bytes, serial: int, nonce: bytes | None) -> Any:
    """Parse one answer in full: successful, one good SingleResponse for ``serial``, the
    nonce echoed (or absent), signed by the responder. Returns the OCSPResponse."""
    from asn1crypto import ocsp

    resp = ocsp.OCSPResponse.load(data)
    if resp["response_status"].native != "successful":
        raise RuntimeError(f"OCSP responseStatus {resp['response_status'].native}")
    basic = resp.basic_ocsp_response
    single = basic["tbs_response_data"]["responses"]
    if len(single) != 1:
        raise RuntimeError(f"{len(single)} SingleResponses, expected 1")
    if single[0]["cert_id"]["serial_number"].native != serial:
        raise RuntimeError("the answer is about another serial")
    if single[0]["cert_status"].name != "good":
        raise RuntimeError(f"the certificate's status is {single[0]['cert_status'].name}, expected good")
    echoed = resp.nonce_value.native if resp.nonce_value is not None else None
    if echoed != nonce:
        raise RuntimeError(f"nonce {nonce.hex() if nonce else None} sent, "
                           f"{echoed.hex() if echoed else None} echoed")
    _check_signature(basic)
    return resp


@dataclass
class OcspLoad:
    """The OCSP loads against one running responder (udun's, or a peer's), with their error
    counts. The same request form for every responder: POST, application/ocsp-request, one
    certificate per request, SHA-1 CertID (pkicore.ocsp.build_request)."""

    target: Target                   # bench/http_load.Server or procs.PeerProcess
    port: int
    work: Path
    cert_der: bytes                  # a good certificate the responder knows ...
    issuer_der: bytes                # ... and its issuer
    wrk: str | None
    clients: int = 8
    label: str = "udun"
    path: str = OCSP_PATH
    workers: int | None = None       # udun: one cached answer per worker at most (checked)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def _requests(self, nonces: list[bytes | None]) -> list[bytes]:
        from asn1crypto import x509

        from pkicore.ocsp import build_request

        cert = x509.Certificate.load(self.cert_der)
        issuer = x509.Certificate.load(self.issuer_der)
        return [build_request(cert, issuer, nonce=n) for n in nonces]

    @property
    def serial(self) -> int:
        from asn1crypto import x509

        return int(x509.Certificate.load(self.cert_der).serial_number)

    def _side(self, script: Path, bodies: list[bytes], kind: str) -> Side:
        def run(secs: float) -> LoadResult:
            if self.wrk:
                result = load_wrk(self.wrk, self.url, script, self.clients, secs, label=self.label)
            else:
                result = load_python(self.port, self.path, bodies, REQUEST_TYPE, ocsp_successful, self.clients, secs)
            self.errors[kind] = self.errors.get(kind, 0) + result.errors
            return result

        return Side(self.label, self.target, run)

    def cached_side(self) -> Side:
        """The same nonce-less request again and again (checked in full first)."""
        (body,) = self._requests([None])
        status, ctype, first = _post(self.url, body)
        if status != 200 or ctype != RESPONSE_TYPE:
            raise RuntimeError(f"{self.label}: POST {self.path} answered {status} {ctype}")
        check_answer(first, self.serial, None)
        if self.workers:
            # Each worker signs once and then repeats its cached answer: at most one distinct
            # answer per worker (logged, not failed: a worker may restart).
            answers = {first} | {_post(self.url, body)[2] for _ in range(4 * self.workers)}
            log(f"ocsp cached ({self.label}): {len(answers)} distinct answers to {4 * self.workers + 1} identical "
                f"requests ({self.workers} workers"
                f"{'' if len(answers) <= self.workers else '; MORE than one per worker: not cached?'})")
        path = self.work / f"ocsp-cached-{self.label}.der"
        path.write_bytes(body)
        script = self.work / f"ocsp-cached-{self.label}.lua"
        script.write_text(CACHED_SCRIPT % {"body": json.dumps(str(path)), "ctype": REQUEST_TYPE}
                          + _OCSP_OK + WRK_TAIL)
        self.errors.setdefault("cached", 0)
        return self._side(script, [body], "cached")

    def nonce_side(self) -> Side:
        """A fresh 16-octet nonce in every request: every answer signed for it (RFC 8954)."""
        nonces: list[bytes | None] = [os.urandom(NONCE_BYTES) for _ in range(NONCE_REQUESTS)]
        bodies = self._requests(nonces)
        script = rotating_script(self.work, f"ocsp-nonce-{self.label}", bodies, REQUEST_TYPE, _OCSP_OK)
        answers = set()
        for i in (0, 1, len(bodies) - 1):   # a sample, each parsed in full
            status, ctype, data = _post(self.url, bodies[i])
            if status != 200 or ctype != RESPONSE_TYPE:
                raise RuntimeError(f"{self.label}: POST {self.path} answered {status} {ctype}")
            check_answer(data, self.serial, nonces[i])
            answers.add(data)
        if len(answers) != 3:
            raise RuntimeError(f"{self.label}: answers to different nonces are identical")
        log(f"ocsp nonce ({self.label}): {len(bodies)} requests of {len(bodies[0])} bytes; sample answers check out")
        self.errors.setdefault("nonce", 0)
        return self._side(script, bodies, "nonce")

    def cached(self, seconds: float, warmup: float, segments: int) -> list[tuple[str, float, str]]:
        (result,) = measure_sides([self.cached_side()], seconds, warmup, segments)
        return [(f"ocsp_cached_c{self.clients}", result.rate, "resp/s")]

    def nonce(self, seconds: float, warmup: float, segments: int) -> list[tuple[str, float, str]]:
        (result,) = measure_sides([self.nonce_side()], seconds, warmup, segments)
        return [(f"ocsp_nonce_c{self.clients}", result.rate, "resp/s")]

    def error_figure(self) -> list[tuple[str, float, str]]:
        """Non-counted answers plus socket errors over both figures (should be 0)."""
        if not self.errors:
            raise RuntimeError("no OCSP figure ran")
        missing = {"cached", "nonce"} - set(self.errors)
        if missing:
            log(f"ocsp errors: only from {', '.join(sorted(self.errors))} ({', '.join(sorted(missing))} failed)")
        return [(f"ocsp_c{self.clients}_errors", float(sum(self.errors.values())), "count")]
