"""Status at the URLs written into every certificate: CRLs (RFC 5280 §4.2.1.13) and the
OCSP responder (RFC 6960, AIA §4.2.2.1)."""
from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime, timezone
from urllib.parse import unquote

from flask import Blueprint, Response, current_app, request

from ca.ocsp import OcspResult
from pkicore.errors import ErrorKind, PkiError

bp = Blueprint("status", __name__)

_CRLS = {"issuing-ca": "issuing", "root-ca": "root"}


@bp.get("/crl/<name>.crl")
def crl(name: str) -> Response:
    """The current full CRL, DER, cacheable until its nextUpdate (RFC 5019 §6 style headers)."""
    which = _CRLS.get(name)
    if which is None:
        raise PkiError(ErrorKind.NOT_FOUND, f"no CRL {name}.crl")
    current = current_app.extensions["udun"].revocation().current(which)
    now = datetime.now(timezone.utc)
    max_age = max(0, int((current.next_update - now).total_seconds()))
    resp = Response(current.der, mimetype="application/pkix-crl")
    resp.headers["Cache-Control"] = f"public, max-age={max_age}, no-transform, must-revalidate"
    resp.expires = current.next_update
    resp.last_modified = current.this_update
    resp.set_etag(f"crl-{which}-{current.number}")
    resp.make_conditional(request)     # 304 for a matching If-None-Match / If-Modified-Since
    return resp


def _ocsp_response(result: OcspResult, cacheable: bool) -> Response:
    resp = Response(result.der, mimetype="application/ocsp-response")
    if cacheable and result.next_update is not None and result.this_update is not None:
        # RFC 5019 §6.2: let HTTP caches keep a nonce-less answer until its nextUpdate.
        now = datetime.now(timezone.utc)
        max_age = max(0, int((result.next_update - now).total_seconds()))
        resp.headers["Cache-Control"] = f"public, max-age={max_age}, no-transform, must-revalidate"
        resp.expires = result.next_update
        resp.last_modified = result.this_update
        resp.set_etag(hashlib.sha1(result.der).hexdigest())
    else:
        resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/ocsp")
def ocsp_post() -> Response:
    """RFC 6960 Appendix A.1: the DER request as the body (application/ocsp-request)."""
    body = request.get_data(cache=False)
    return _ocsp_response(current_app.extensions["udun"].responder().respond(body), cacheable=False)


@bp.get("/ocsp/<path:encoded>")
def ocsp_get(encoded: str) -> Response:
    """RFC 6960 Appendix A.1: base64 of the DER request, URL-encoded, in the path."""
    try:
        der = base64.b64decode(unquote(encoded), validate=False)
    except (binascii.Error, ValueError):
        der = b""
    return _ocsp_response(current_app.extensions["udun"].responder().respond(der), cacheable=True)
