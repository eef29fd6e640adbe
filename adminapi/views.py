"""Certificate admin behind the admin API key: issue from a CSR, show one certificate;
the service's liveness, readiness and metrics (with the key too: they say nothing without it)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from ca.policy import load_csr_bytes
from pkicore.errors import ErrorKind, PkiError
from webapi.presenters import certificate_json
from webapi.auth import require_key
from webapi.views.health import _check, answer, live, metrics_response, schema_check

bp = Blueprint("admin", __name__)


def _ctx() -> dict[str, Any]:
    return current_app.extensions["udun-admin"]  # type: ignore[no-any-return]


@bp.before_request
def require_admin() -> Response | None:
    """Every admin route needs the bearer key (RFC 6750)."""
    return require_key(_ctx()["key"])


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: the process answers (no database, no token)."""
    return live()


@bp.get("/metrics")
def metrics() -> Response:
    return metrics_response()


@bp.get("/readyz")
def readyz() -> Response:
    """The database answers at this udun's schema revision, the CA is initialised and its
    issuing key can be opened on its token (with the CA PIN): issuance can be served."""
    ca = _ctx()["ca"]

    def ca_key() -> dict[str, Any]:
        ca.issuer()                      # logs in once per process, again after a token reset
        return {"token": ca.authority("issuing").token_label}

    return answer({"schema": _check("schema", lambda: schema_check(ca.store.engine)),
                   "database": _check("database", lambda: {"ca": ca.authority("issuing").name}),
                   "ca_key": _check("ca key", ca_key)})


@bp.post("/api/v1/certificates")
def issue() -> Response:
    profile = request.args.get("profile", "client")
    body = request.get_data(cache=False)
    if not body:
        raise PkiError(ErrorKind.BAD_INPUT, "send the CSR (PEM or DER) as the body")
    rec = _ctx()["ca"].issue(load_csr_bytes(body), profile, requester="api")
    resp = jsonify(certificate_json(rec))
    resp.status_code = 201
    return resp


@bp.get("/api/v1/certificates/<serial>")
def show(serial: str) -> Response:
    return jsonify(certificate_json(_ctx()["ca"].get(serial)))
