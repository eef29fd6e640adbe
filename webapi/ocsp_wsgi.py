"""A lean WSGI path for OCSP, in front of Flask.

OCSP is the busiest endpoint a CA serves and its answers are mostly pre-signed: Flask's
per-request machinery (context, routing, response object) costs as much as the answer.
This middleware answers /ocsp requests itself and hands everything else to Flask.
RFC 6960 Appendix A; RFC 5019 §6 caching headers for GET.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import weakref
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any, Callable, Iterable
from urllib.parse import unquote

from ca.ocsp import OcspResult, Responder
from pkicore import ocsp as ocspmod
from webapi import observability as obs
from webapi.bodies import wsgi_body

MAX_BODY = 64 * 1024
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
# An error status is a constant OCSPResponse (no responseBytes): its DER names it.
_REFUSALS = {ocspmod.refusal(s): s for s in ("malformed_request", "internal_error", "try_later", "sign_required",
                                              "unauthorized")}


def _headers(result: OcspResult, cacheable: bool) -> list[tuple[str, str]]:
    headers = [("Content-Type", "application/ocsp-response"), ("Content-Length", str(len(result.der)))]
    if cacheable and result.next_update is not None and result.this_update is not None:
        max_age = max(0, int((result.next_update - datetime.now(timezone.utc)).total_seconds()))
        headers += [
            ("Cache-Control", f"public, max-age={max_age}, no-transform, must-revalidate"),
            ("Expires", format_datetime(result.next_update, usegmt=True)),
            ("Last-Modified", format_datetime(result.this_update, usegmt=True)),
            ("ETag", f'"{hashlib.sha1(result.der).hexdigest()}"'),
        ]
    else:
        headers.append(("Cache-Control", "no-store"))
    if result.retry_after is not None:            # tryLater: when the token is looked for again
        headers.append(("Retry-After", str(result.retry_after)))
    return headers


class OcspFastPath:
    """WSGI middleware: POST /ocsp and GET /ocsp/{base64}; all else goes to ``app``."""

    def __init__(self, app: WsgiApp, responder: Callable[[], Responder]) -> None:
        self.app = app
        self.responder = responder
        # The pre-signed answers served so far: the responder hands out the very object it
        # cached, so the second time one is seen it came from the cache. Weak: they go when
        # the responder's LRU drops them. (One first signed for the in-process verifier
        # counts as signed the first time it is served here.)
        self._served: weakref.WeakSet[OcspResult] = weakref.WeakSet()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        if path == "/ocsp" and method == "POST":
            environ[obs.ROUTE] = obs.OCSP_POST_ROUTE
            body, _too_large = wsgi_body(environ, MAX_BODY)       # too large: answered as empty
            return self._answer(body, False, start_response)
        if path.startswith("/ocsp/") and method == "GET":
            environ[obs.ROUTE] = obs.OCSP_GET_ROUTE
            try:
                der = base64.b64decode(unquote(path[len("/ocsp/"):]), validate=False)
            except (binascii.Error, ValueError):
                der = b""
            return self._answer(der, True, start_response)
        return self.app(environ, start_response)

    def _answer(self, der: bytes, cacheable: bool, start_response: StartResponse) -> Iterable[bytes]:
        try:
            result = self.responder().respond(der)
        except Exception:  # noqa: BLE001  e.g. no CA here: an OCSP error status, never a 500
            result = OcspResult(ocspmod.refusal("internal_error"), None, None)
        obs.count_ocsp(*self._outcome(result))
        start_response("200 OK", _headers(result, cacheable))
        return [result.der]

    def _outcome(self, result: OcspResult) -> tuple[str, str]:
        """(responseStatus, cached | signed | none) of an answer."""
        if result.this_update is None:                 # ca.ocsp: only error statuses have no thisUpdate
            return _REFUSALS.get(result.der, "other"), "none"
        if result.next_update is None:                 # a nonce or an unknown serial: never cached
            return "successful", "signed"
        if result in self._served:
            return "successful", "cached"
        self._served.add(result)
        return "successful", "signed"
