"""Rate limits of the bank-facing API (issue 12, point 7), over pkicore.ratelimit's GCRA.

Per source address, on every route, as WSGI middleware: before anything is parsed or read
from the database. Per bank key, in webapi.auth.bank_route after the key was checked (a
limit keyed by a key id the client merely names would let anyone use up a bank's budget).
Over a limit: 429 (RFC 6585 §4) with Retry-After, problem+json; on the OCSP paths an OCSP
tryLater answer instead of the JSON (what an OCSP client reads).

The buckets are per worker process, like the OCSP cache: with N workers on M nodes a
client gets at most N x M times the rate, which is what an operator sizes them by (README
"Banks and their API keys"). The address is REMOTE_ADDR (IPv6: its /64, what one
subscriber holds); a proxy in front must keep the client's address: X-Forwarded-For is
never read, any client can write it.
"""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable
from typing import Any

from pkicore.ratelimit import Limiter, Rate, retry_seconds
from webapi.observability import ROUTE

LIMITED_ROUTE = "rate-limited"  # the metrics' and access log's route label of a refusal
# OCSPResponse with responseStatus tryLater (RFC 6960 §4.2.1): no responseBytes, unsigned.
_OCSP_TRY_LATER = bytes.fromhex("30030a0103")


def problem_body(wait: float, what: str) -> bytes:
    return json.dumps({"type": "urn:udun:problem:too-many-requests", "code": "too-many-requests",
                       "title": "too many requests", "status": 429,
                       "detail": f"{what}; retry after {retry_seconds(wait)} s"}).encode()


def client_of(environ: dict[str, Any]) -> str:
    """The address a limit counts: IPv4 as it is, IPv6 by its /64, an IPv4-mapped IPv6
    address (a dual-stack socket's IPv4 client) as its IPv4 address, not as one shared /64."""
    addr = environ.get("REMOTE_ADDR") or "-"
    if ":" not in addr:
        return addr
    try:
        v6 = ipaddress.IPv6Address(addr.split("%")[0])
    except ValueError:
        return addr
    if v6.ipv4_mapped is not None:
        return str(v6.ipv4_mapped)
    return str(ipaddress.IPv6Network(f"{v6}/64", strict=False))


class RateLimited:
    """WSGI middleware: the per-address limit on every request."""

    def __init__(self, app: Callable[..., Iterable[bytes]], per_address: Rate | None,
                 clock: Callable[[], int] | None = None) -> None:
        self.app = app
        self.rate = per_address
        self.limiter = (Limiter(per_address, clock) if clock else Limiter(per_address)) if per_address else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.limiter is None:
            return self.app(environ, start_response)
        wait = self.limiter.wait(client_of(environ))
        if not wait:
            return self.app(environ, start_response)
        environ[ROUTE] = LIMITED_ROUTE
        if environ.get("PATH_INFO", "").startswith("/ocsp"):
            body, ctype = _OCSP_TRY_LATER, "application/ocsp-response"
        else:
            body, ctype = problem_body(wait, f"more than {self.rate} from this address"), "application/problem+json"
        start_response("429 Too Many Requests", [("Content-Type", ctype), ("Content-Length", str(len(body))),
                                                 ("Retry-After", str(retry_seconds(wait)))])
        return [body]
