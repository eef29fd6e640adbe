"""Fetching status over HTTP from the URLs in a certificate (the CLI's edge; pkicore is pure)."""
from __future__ import annotations

import urllib.error
import urllib.request

from asn1crypto import x509

from pkicore import ocsp

TIMEOUT = 10


def ocsp_over_http(cert_der: bytes, issuer_der: bytes) -> list[tuple[str, bytes]]:
    """Ask the OCSP responders named in the certificate's AIA (RFC 5280 §4.2.2.1)."""
    cert, issuer = x509.Certificate.load(cert_der), x509.Certificate.load(issuer_der)
    request = ocsp.build_request(cert, issuer)
    out = []
    for url in cert.ocsp_urls:
        if not url.startswith(("http://", "https://")):
            continue
        req = urllib.request.Request(url, data=request, headers={"Content-Type": "application/ocsp-request"})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                out.append(("ocsp", resp.read(64 * 1024)))
        except (urllib.error.URLError, OSError):
            continue
    return out


def crls_over_http(certs: list[bytes], base_url: str) -> list[bytes]:
    """CRLs at the distribution points of ``certs`` that our own services publish."""
    out = []
    for der in certs:
        dps = x509.Certificate.load(der).crl_distribution_points
        for dp in dps:
            url = dp.url
            if url and url.startswith(base_url + "/"):
                try:
                    with urllib.request.urlopen(url, timeout=10) as resp:
                        out.append(resp.read(64 * 1024 * 1024))
                except (urllib.error.URLError, OSError):
                    pass
    return out
