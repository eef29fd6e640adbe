"""The OCSP figures: POST /ocsp on the running `udun serve` from 8 clients.

Cached: the same nonce-less request for one good certificate (the responder pre-signs
and caches those answers). Nonce: every request carries a fresh 16-octet nonce, so every
answer is signed on the token; wrk rotates through pre-built requests (a Lua `request`
function), each with its own nonce. An answer counts when it is HTTP 200 with OCSP
responseStatus successful; a sample is parsed and checked in full first.
"""
from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.http_load import POST_FILE, WRK_TAIL, LoadResult, Server, load_python, load_wrk, measure
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


def _post(base: str, body: bytes) -> tuple[int, str, bytes]:
    req = urllib.request.Request(base + OCSP_PATH, data=body, headers={"Content-Type": REQUEST_TYPE})
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
    """Both OCSP figures against one running server, with their error counts."""

    server: Server
    work: Path
    cert_der: bytes
    issuer_der: bytes
    wrk: str | None
    clients: int = 8
    errors: dict[str, int] = field(default_factory=dict)

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

    def _run(self, script: Path, bodies: list[bytes], seconds: float, warmup: float, segments: int) -> LoadResult:
        def run(secs: float) -> LoadResult:
            if self.wrk:
                return load_wrk(self.wrk, self.server.base + OCSP_PATH, script, self.clients, secs)
            return load_python(self.server.port, OCSP_PATH, bodies, REQUEST_TYPE, ocsp_successful,
                               self.clients, secs)

        return measure(self.server, run, seconds, warmup, segments)

    def cached(self, seconds: float, warmup: float, segments: int) -> list[tuple[str, float, str]]:
        (body,) = self._requests([None])
        status, ctype, first = _post(self.server.base, body)
        if status != 200 or ctype != RESPONSE_TYPE:
            raise RuntimeError(f"POST /ocsp answered {status} {ctype}")
        check_answer(first, self.serial, None)
        # Each worker signs once and then repeats its cached answer: at most one distinct
        # answer per worker (logged, not failed: a worker may restart).
        workers = os.cpu_count() or 1
        answers = {first} | {_post(self.server.base, body)[2] for _ in range(4 * workers)}
        log(f"ocsp cached: {len(answers)} distinct answers to {4 * workers + 1} identical requests "
            f"({workers} workers{'' if len(answers) <= workers else '; MORE than one per worker: not cached?'})")
        path = self.work / "ocsp-cached.der"
        path.write_bytes(body)
        script = self.work / "ocsp-cached.lua"
        script.write_text(CACHED_SCRIPT % {"body": json.dumps(str(path)), "ctype": REQUEST_TYPE}
                          + _OCSP_OK + WRK_TAIL)
        result = self._run(script, [body], seconds, warmup, segments)
        self.errors["cached"] = result.errors
        return [(f"ocsp_cached_c{self.clients}", result.rate, "resp/s")]

    def nonce(self, seconds: float, warmup: float, segments: int) -> list[tuple[str, float, str]]:
        nonces: list[bytes | None] = [os.urandom(NONCE_BYTES) for _ in range(NONCE_REQUESTS)]
        bodies = self._requests(nonces)
        script = rotating_script(self.work, "ocsp-nonce", bodies, REQUEST_TYPE, _OCSP_OK)
        answers = set()
        for i in (0, 1, len(bodies) - 1):   # a sample, each parsed in full
            status, ctype, data = _post(self.server.base, bodies[i])
            if status != 200 or ctype != RESPONSE_TYPE:
                raise RuntimeError(f"POST /ocsp answered {status} {ctype}")
            check_answer(data, self.serial, nonces[i])
            answers.add(data)
        if len(answers) != 3:
            raise RuntimeError("answers to different nonces are identical")
        log(f"ocsp nonce: {len(bodies)} requests of {len(bodies[0])} bytes; sample answers check out")
        result = self._run(script, bodies, seconds, warmup, segments)
        self.errors["nonce"] = result.errors
        return [(f"ocsp_nonce_c{self.clients}", result.rate, "resp/s")]

    def error_figure(self) -> list[tuple[str, float, str]]:
        """Non-counted answers plus socket errors over both figures (should be 0)."""
        if not self.errors:
            raise RuntimeError("no OCSP figure ran")
        missing = {"cached", "nonce"} - set(self.errors)
        if missing:
            log(f"ocsp errors: only from {', '.join(sorted(self.errors))} ({', '.join(sorted(missing))} failed)")
        return [(f"ocsp_c{self.clients}_errors", float(sum(self.errors.values())), "count")]
