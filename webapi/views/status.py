"""CRLs at the distribution-point URLs written into every certificate (RFC 5280 §4.2.1.13)
and the CA certificates at the AIA caIssuers URLs (RFC 5280 §4.2.2.1), from the database.

OCSP (the AIA URL) is answered in front of Flask by webapi.ocsp_wsgi."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, Response, current_app, request

from pkicore.errors import ErrorKind, PkiError
from webapi.auth import public

bp = Blueprint("status", __name__)

_CRLS = {"issuing-ca": "issuing", "root-ca": "root"}


@bp.get("/crl/<name>.crl")
@public
def crl(name: str) -> Response:
    """The current full CRL, DER, cacheable until its nextUpdate (RFC 5019 §6 style headers)."""
    which = _CRLS.get(name)
    if which is None:
        raise PkiError(ErrorKind.NOT_FOUND, f"no CRL {name}.crl")
    # As the CA side stored it; it re-signs before nextUpdate (`udun ca crl --due`).
    current = current_app.extensions["udun"]._ca().latest_crl(which)
    now = datetime.now(timezone.utc)
    max_age = max(0, int((current.next_update - now).total_seconds()))
    resp = Response(current.der, mimetype="application/pkix-crl")
    resp.headers["Cache-Control"] = f"public, max-age={max_age}, no-transform, must-revalidate"
    resp.expires = current.next_update
    resp.last_modified = current.this_update
    resp.set_etag(f"crl-{which}-{current.number}")
    resp.make_conditional(request)     # 304 for a matching If-None-Match / If-Modified-Since
    return resp


@bp.get("/ca/<name>.crt")
@public
def ca_certificate(name: str) -> Response:
    """AIA caIssuers (RFC 5280 §4.2.2.1): a DER certificate, application/pkix-cert."""
    chain = current_app.extensions["udun"]._ca().chain_der()
    ders = {"issuing-ca": chain[0], "root-ca": chain[1]}
    if name not in ders:
        raise PkiError(ErrorKind.NOT_FOUND, f"no CA certificate {name}")
    return Response(ders[name], mimetype="application/pkix-cert",
                    headers={"Cache-Control": "public, max-age=86400"})
