"""Certificate admin behind the admin API key: issue from a CSR, show one certificate;
the service's liveness, readiness and metrics (with the key too: they say nothing without it)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from ca.policy import load_csr_bytes
from pkicore.errors import ErrorKind, PkiError
from ca.certquery import SEARCH_PARAMETERS, CertificateQuery, detail
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
    ca = _ctx()["ca"]
    rec = ca.issue(load_csr_bytes(body), profile, requester="api")
    resp = jsonify(certificate_json(rec, ca.clock()))
    resp.status_code = 201
    return resp


@bp.get("/api/v1/certificates")
def search() -> Response:
    """Certificates by subject text, serial prefix, status, profile, issued / expiring
    between; newest first, ``limit`` a page, ``next_cursor`` for the next one."""
    args = request.args
    unknown = sorted(set(args) - set(SEARCH_PARAMETERS))
    if unknown:
        raise PkiError(ErrorKind.BAD_INPUT, f"unknown query parameter {unknown[0]!r}; known: "
                       f"{', '.join(SEARCH_PARAMETERS)}", field=unknown[0])
    ca = _ctx()["ca"]
    page = ca.search(CertificateQuery.build(**{name: args.get(name) for name in SEARCH_PARAMETERS}))
    now = ca.clock()
    return jsonify({"items": [certificate_json(rec, now) for rec in page.items], "next_cursor": page.next_cursor})


@bp.get("/api/v1/certificates/<serial>")
def show(serial: str) -> Response:
    """One certificate with its whole status history."""
    ca = _ctx()["ca"]
    rec = ca.get(serial)
    return jsonify({**certificate_json(rec, ca.clock()),
                    "history": detail(rec, ca.store.history(rec.serial), ca.clock())["history"]})
