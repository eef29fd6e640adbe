"""CRLs at the distribution-point URLs written into every certificate (RFC 5280 §4.2.1.13).

OCSP (the AIA URL) is answered in front of Flask by webapi.ocsp_wsgi."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, Response, current_app, request

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
