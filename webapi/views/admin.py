"""Certificate admin (API key) and the CA certificates named in every certificate's AIA."""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, jsonify, request

from ca.policy import load_csr_bytes
from pkicore.errors import ErrorKind, PkiError
from webapi.problems import problem
from webapi.presenters import certificate_json

bp = Blueprint("admin", __name__)


def _services():  # type: ignore[no-untyped-def]
    return current_app.extensions["udun"]


def require_admin() -> Response | None:
    key = _services().admin_api_key
    if not key:
        return problem(403, "forbidden", "admin API disabled", "set UDUN_ADMIN_API_KEY to enable it")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # RFC 9110 §11.1: the scheme name is case-insensitive.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
        return problem(401, "unauthorized", "unauthorized", "a valid admin API key is required")
    return None


@bp.post("/api/v1/certificates")
def issue() -> Response:
    denied = require_admin()
    if denied is not None:
        return denied
    profile = request.args.get("profile", "client")
    body = request.get_data(cache=False)
    if not body:
        raise PkiError(ErrorKind.BAD_INPUT, "send the CSR (PEM or DER) as the body")
    rec = _services().ca.issue(load_csr_bytes(body), profile, requester="api")
    resp = jsonify(certificate_json(rec))
    resp.status_code = 201
    return resp


@bp.get("/api/v1/certificates/<serial>")
def show(serial: str) -> Response:
    denied = require_admin()
    if denied is not None:
        return denied
    return jsonify(certificate_json(_services().ca.get(serial)))


@bp.get("/ca/<name>.crt")
def ca_certificate(name: str) -> Response:
    """AIA caIssuers (RFC 5280 §4.2.2.1): a DER certificate, application/pkix-cert."""
    chain = _services().ca.chain_der()
    ders = {"issuing-ca": chain[0], "root-ca": chain[1]}
    if name not in ders:
        raise PkiError(ErrorKind.NOT_FOUND, f"no CA certificate {name}")
    return Response(ders[name], mimetype="application/pkix-cert",
                    headers={"Cache-Control": "public, max-age=86400"})
