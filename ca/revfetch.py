"""Status of certificates over HTTP, from the URLs they name (the edge; pkicore is pure).

A bank trusts CAs other than ours (第三方证书): their certificates' status is fetched from
the OCSP responder in their AIA (RFC 5280 §4.2.2.1) or the CRLs at their distribution
points (§4.2.1.13), and kept until the data's nextUpdate so a verifier does not fetch per
payment. A failed fetch is remembered for a short while: a dead responder must not make
every payment wait for the timeout.
"""
from __future__ import annotations

import threading
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import Callable

from asn1crypto import crl as asn1crl
from asn1crypto import ocsp as asn1ocsp
from asn1crypto import x509

from pkicore import ocsp
from pkicore.clock import Clock, system_clock
from pkicore.pathstatus import StatusSource

TIMEOUT = 10
MAX_OCSP_BYTES = 64 * 1024
MAX_CRL_BYTES = 64 * 1024 * 1024
RETRY_AFTER = timedelta(seconds=30)        # after a failed fetch
MAX_ENTRIES = 10_000


def _get(url: str, data: bytes | None = None, limit: int = MAX_CRL_BYTES, timeout: float = TIMEOUT) -> bytes | None:
    if not url.startswith(("http://", "https://")):
        return None
    headers = {"Content-Type": "application/ocsp-request"} if data is not None else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers),
                                    timeout=timeout) as resp:
            body = bytes(resp.read(limit + 1))
            return body if len(body) <= limit else None      # cut short it would not parse: drop it
    except (urllib.error.URLError, OSError, ValueError):
        return None


def crls_over_http(certs: list[bytes]) -> list[bytes]:
    """The CRLs at the HTTP distribution points of ``certs`` (each URL once)."""
    out, seen = [], set()
    for der in certs:
        for dp in x509.Certificate.load(der).crl_distribution_points:
            url = dp.url
            if url and url not in seen:
                seen.add(url)
                body = _get(url)
                if body is not None:
                    out.append(body)
    return out


def _next_update(kind: str, data: bytes) -> datetime | None:
    try:
        if kind == "crl":
            return asn1crl.CertificateList.load(data)["tbs_cert_list"]["next_update"].native  # type: ignore[no-any-return]
        basic = asn1ocsp.OCSPResponse.load(data).basic_ocsp_response
        updates = [r["next_update"].native for r in basic["tbs_response_data"]["responses"]]
        return min(updates) if updates and None not in updates else None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


class HttpStatus:
    """A status source for any CA's certificates: OCSP from the AIA, else the CRLs at the
    distribution points; answers kept until their nextUpdate (failures for RETRY_AFTER)."""

    def __init__(self, clock: Clock = system_clock, timeout: float = TIMEOUT) -> None:
        self.clock = clock
        self.timeout = timeout
        self._cache: dict[tuple[str, bytes], tuple[list[tuple[str, bytes]], datetime]] = {}
        self._lock = threading.Lock()

    def _kept(self, key: tuple[str, bytes], fetch: Callable[[], list[tuple[str, bytes]]]) -> list[tuple[str, bytes]]:
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now < hit[1]:
            return hit[0]
        got = fetch()
        updates = [u for u in (_next_update(k, d) for k, d in got) if u is not None]
        # Kept until the earliest nextUpdate; nothing (or data without one) only briefly.
        until = min(updates) if got and len(updates) == len(got) else now + RETRY_AFTER
        with self._lock:
            if len(self._cache) >= MAX_ENTRIES:
                self._cache.clear()
            self._cache[key] = (got, until)
        return got

    def __call__(self, cert_der: bytes, issuer_der: bytes) -> list[tuple[str, bytes]]:
        cert = x509.Certificate.load(cert_der)
        if cert.ocsp_urls:
            answer = self._kept(("ocsp", cert_der + issuer_der), lambda: [
                ("ocsp", body) for url in cert.ocsp_urls
                if (body := _get(url, ocsp.build_request(cert, x509.Certificate.load(issuer_der)),
                                 MAX_OCSP_BYTES, self.timeout)) is not None])
            if answer:
                return answer
        out: list[tuple[str, bytes]] = []
        for dp in cert.crl_distribution_points:
            url = dp.url
            if url:
                out += self._kept(("crl", url.encode()), lambda u=url: [  # type: ignore[misc]
                    ("crl", body) for body in [_get(u, None, MAX_CRL_BYTES, self.timeout)] if body is not None])
        return out


def first_of(*sources: StatusSource) -> StatusSource:
    """The first source that has anything to say about a certificate."""
    def source(cert_der: bytes, issuer_der: bytes) -> list[tuple[str, bytes]]:
        for s in sources:
            found = s(cert_der, issuer_der)
            if found:
                return found
        return []
    return source
