"""Certificate administration by operators: issue from a CSR, find and show
certificates, hold, release and revoke them, publish a CRL now; the service's liveness,
readiness and metrics (for any operator: they say nothing to anyone else)."""
from __future__ import annotations

from typing import Any

from asn1crypto import pem
from flask import Blueprint, Response, current_app, g, jsonify, request

from ca.policy import load_csr_bytes
from pkicore.clock import rfc3339
from pkicore.errors import ErrorKind, PkiError
from ca.certquery import SEARCH_PARAMETERS, CertificateQuery, detail
from ca.revocation import Revocation
from ca.storage.store import CertRecord
from pkicore.crlbuild import REVOKE_REASONS
from webapi.bodies import json_object, parse_time
from webapi.presenters import certificate_json
from webapi.auth import actor, operator_route
from webapi.views.health import _check, answer, live, metrics_response, schema_check

bp = Blueprint("admin", __name__)


def _ctx() -> dict[str, Any]:
    return current_app.extensions["udun-admin"]  # type: ignore[no-any-return]


@bp.get("/healthz")
@operator_route("service:read")
def healthz() -> Response:
    """Liveness: the process answers (no database, no token)."""
    return live()


@bp.get("/metrics")
@operator_route("service:read")
def metrics() -> Response:
    return metrics_response()


@bp.get("/readyz")
@operator_route("service:read")
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
@operator_route("certificates:issue")
def issue() -> Response:
    profile = request.args.get("profile", "client")
    customer = request.args.get("customer")
    body = request.get_data(cache=False)
    if not body:
        raise PkiError(ErrorKind.BAD_INPUT, "send the CSR (PEM or DER) as the body")
    der = load_csr_bytes(body)
    from adminapi.approvals import issue_needs_approval      # one import cycle less at start-up
    from ca.customers import Customers

    ca = _ctx()["ca"]
    if customer is not None:
        Customers(ca.store, ca.clock).must_exist(customer)      # 404 before any request is made
    pending = issue_needs_approval(profile, pem.armor("CERTIFICATE REQUEST", der).decode(), customer)
    if pending is not None:
        return pending
    rec = ca.issue(der, profile, requester=actor(), customer=customer)
    resp = jsonify(certificate_json(rec, ca.clock()))
    resp.status_code = 201
    resp.headers["Location"] = f"/api/v1/certificates/{rec.serial}"     # RFC 9110 §15.3.2
    return resp


@bp.get("/api/v1/certificates")
@operator_route("certificates:read")
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
@operator_route("certificates:read")
def show(serial: str) -> Response:
    """One certificate with its whole status history."""
    return _shown(_ctx()["ca"].get(serial))


def _shown(rec: CertRecord) -> Response:
    ca = _ctx()["ca"]
    return jsonify({**certificate_json(rec, ca.clock()),
                    "history": detail(rec, ca.store.history(rec.serial), ca.clock())["history"]})


def _revocation() -> Revocation:
    """One per app: it keeps the root CRL key once opened."""
    ctx = _ctx()
    if "revocation" not in ctx:
        ctx["revocation"] = Revocation(ctx["ca"])
    return ctx["revocation"]  # type: ignore[no-any-return]


def _serial(serial: str) -> str:
    """404 for an unknown one, 403/409 for an operator's login certificate (admins only, and
    never the last admin's last one), before any change."""
    found = _ctx()["ca"].get(serial).serial
    _ctx()["operators"].check_status_change(found, g.operator)
    return found


@bp.post("/api/v1/certificates/<serial>/hold")
@operator_route("certificates:status")
def hold(serial: str) -> Response:
    """Suspend (挂失, certificateHold); a new CRL is published at once."""
    json_object(request, ())
    return _shown(_revocation().hold(_serial(serial), actor=actor()))


@bp.post("/api/v1/certificates/<serial>/release")
@operator_route("certificates:status")
def release(serial: str) -> Response:
    """Release a hold (解挂); a new CRL is published at once."""
    json_object(request, ())
    return _shown(_revocation().release(_serial(serial), actor=actor()))


@bp.post("/api/v1/certificates/<serial>/revoke")
@operator_route("certificates:status")
def revoke(serial: str) -> Response:
    """Revoke for good: ``{"reason": RFC 5280 name, "invalidity_date": RFC 3339}``, both optional."""
    body = json_object(request, ("reason", "invalidity_date"))
    invalidity = parse_time(body["invalidity_date"], "invalidity_date") if body.get("invalidity_date") else None
    reason = body.get("reason") or "unspecified"
    if reason not in REVOKE_REASONS:
        raise PkiError(ErrorKind.BAD_INPUT, f"reason is one of {', '.join(REVOKE_REASONS)}", field="reason")
    return _shown(_revocation().revoke(_serial(serial), reason, invalidity, actor=actor()))


@bp.post("/api/v1/crls")
@operator_route("crl:publish")
def crl_now() -> Response:
    """Publish the issuing CA's CRL now (``?ca=root`` for the root's)."""
    which = request.args.get("ca", "issuing")
    if which not in ("issuing", "root"):
        raise PkiError(ErrorKind.BAD_INPUT, "ca is issuing or root", field="ca")
    json_object(request, ())
    rec = _revocation().publish(which)
    resp = jsonify({"ca": which, "number": rec.number, "this_update": rfc3339(rec.this_update),
                    "next_update": rfc3339(rec.next_update), "entries": rec.entries})
    resp.status_code = 201
    return resp

