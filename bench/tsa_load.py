"""The TSA figure: POST /tsa (RFC 3161) on the running `udun serve` from 8 clients.

Every request carries its own nonce and imprint, so every answer is a token freshly
signed on the CA token: wrk rotates through pre-built requests (a Lua `request`), like the
OCSP nonce figure. An answer counts when it is HTTP 200 and a TimeStampResp whose status
is granted (or grantedWithMods) with a token after it, read in wrk's Lua; a sample is
checked in full first by pkicore.tsp.check_token (imprint, nonce) and the TSA certificate
validated up to our root.
"""
from __future__ import annotations

import os
import secrets
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.http_load import LoadResult, Server, load_python, load_wrk, measure
from bench.measure import log
from bench.ocsp_load import rotating_script

TSA_PATH = "/tsa"
QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
REQUESTS = 2000          # distinct requests wrk cycles through
NONCE_BITS = 64          # with the top bit set: every nonce is a 9-octet INTEGER, every request one length

# TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken OPTIONAL } and
# PKIStatusInfo ::= SEQUENCE { status INTEGER, ... }: granted(0) or grantedWithMods(1),
# followed by the token (RFC 3161 §2.4.2).
_GRANTED_OK = r"""
local function header(body, off)
  -- the contents' first byte and length of the TLV whose tag is at off
  local b = body:byte(off + 1)
  if b == nil then
    return nil, 0
  end
  if b < 0x80 then
    return off + 2, b
  end
  local len = 0
  for i = 1, b - 0x80 do
    len = len * 256 + (body:byte(off + 1 + i) or 0)
  end
  return off + 2 + (b - 0x80), len
end

function ok(status, body)
  if status ~= 200 or #body < 10 or body:byte(1) ~= 0x30 then
    return false
  end
  local info = header(body, 1)
  if info == nil or body:byte(info) ~= 0x30 then
    return false
  end
  local first, len = header(body, info)
  if first == nil or body:byte(first) ~= 0x02 or body:byte(first + 1) ~= 1 then
    return false
  end
  local s = body:byte(first + 2)
  return (s == 0 or s == 1) and #body > first + len + 1
end
"""


def tsa_granted(status: int, data: bytes) -> bool:
    """What the Python load generator counts: the same test as the Lua `ok`."""
    def header(off: int) -> tuple[int, int]:
        b = data[off + 1]
        if b < 0x80:
            return off + 2, b
        n = b - 0x80
        return off + 2 + n, int.from_bytes(data[off + 2:off + 2 + n], "big")

    if status != 200 or len(data) < 10 or data[0] != 0x30:
        return False
    try:
        info, _ = header(0)
        if data[info] != 0x30:
            return False
        first, length = header(info)
        return data[first:first + 2] == b"\x02\x01" and data[first + 2] in (0, 1) and len(data) > first + length
    except IndexError:
        return False


def _post(base: str, body: bytes) -> tuple[int, str, bytes]:
    req = urllib.request.Request(base + TSA_PATH, data=body, headers={"Content-Type": QUERY_TYPE})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read()


@dataclass
class TsaLoad:
    """The TSA figure and its error count against one running server."""

    server: Server
    work: Path
    root_der: bytes
    wrk: str | None
    clients: int = 8

    def _check(self, data: bytes, imprint: bytes, nonce: int) -> int:
        """One answer in full: granted, the token answers this request, the TSA certificate
        chains to our root at genTime, genTime is now. Returns the token's serial."""
        from asn1crypto import x509

        from pkicore import tsp
        from pkicore.pathval import ChainValidator, TrustStore

        if not tsa_granted(200, data):
            raise RuntimeError("the Lua test would not count this answer")
        check = tsp.check_token(tsp.response_token(data), imprint=imprint, nonce=nonce)
        if not check.ok or check.info is None or check.tsa_cert_der is None:
            raise RuntimeError(f"the time-stamp token does not check: {check.problem}")
        skew = abs(check.info.gen_time - datetime.now(UTC))
        if skew > timedelta(minutes=1):
            raise RuntimeError(f"genTime {check.info.gen_time} is {skew} from now")
        others = [c for c in check.certificates if c != check.tsa_cert_der]
        chain = ChainValidator(TrustStore.from_certs([self.root_der])).validate(
            x509.Certificate.load(check.tsa_cert_der), others, check.info.gen_time)
        if not chain.ok:
            raise RuntimeError(f"the TSA certificate does not validate to our root: {chain.detail}")
        return check.info.serial

    def figure(self, seconds: float, warmup: float, segments: int) -> list[tuple[str, float, str]]:
        from pkicore import tsp

        imprints = [os.urandom(32) for _ in range(REQUESTS)]
        nonces = [secrets.randbits(NONCE_BITS) | 1 << (NONCE_BITS - 1) for _ in range(REQUESTS)]
        bodies = [tsp.build_request(i, "sha256", nonce=n, cert_req=True) for i, n in zip(imprints, nonces)]
        script = rotating_script(self.work, "tsa-requests", bodies, QUERY_TYPE, _GRANTED_OK)
        serials = set()
        for i in (0, 1, len(bodies) - 1):   # a sample, each checked in full
            status, ctype, data = _post(self.server.base, bodies[i])
            if status != 200 or ctype != REPLY_TYPE:
                raise RuntimeError(f"POST /tsa answered {status} {ctype}")
            serials.add(self._check(data, imprints[i], nonces[i]))
        if len(serials) != 3:
            raise RuntimeError("three time-stamps share a serial number")
        log(f"tsa: {len(bodies)} requests of {len(bodies[0])} bytes; sample answers check out")

        def run(secs: float) -> LoadResult:
            if self.wrk:
                return load_wrk(self.wrk, self.server.base + TSA_PATH, script, self.clients, secs)
            return load_python(self.server.port, TSA_PATH, bodies, QUERY_TYPE, tsa_granted, self.clients, secs)

        result = measure(self.server, run, seconds, warmup, segments)
        return [(f"tsa_c{self.clients}", result.rate, "resp/s"),
                (f"tsa_c{self.clients}_errors", float(result.errors), "count")]
