"""Counter enrollment through the admin API (ca.enrollments): operators make enrollments
and get their one-time codes; the customer's `udun enroll` uses the two public routes,
whose only credential is the code (five wrong codes lock the enrollment). They are on the
admin service because issuing needs the CA key, which the bank-facing server never holds:
expose only ``/api/v1/enroll*`` of it to where customers enroll (see README)."""
from __future__ import annotations

import re
from typing import Any

from asn1crypto import pem
from flask import Blueprint, Response, current_app, jsonify, request

from ca.enrollments import DEFAULT_HOURS, Enrollments, enrollment_json
from ca.policy import load_csr_bytes
from pkicore.errors import ErrorKind, PkiError
from webapi.auth import actor, operator_route, public
from webapi.bodies import json_object

bp = Blueprint("admin_enrollments", __name__, url_prefix="/api/v1")


def _enrollments() -> Enrollments:
    ctx: dict[str, Any] = current_app.extensions["udun-admin"]
    if "enrollments" not in ctx:
        ctx["enrollments"] = Enrollments(ctx["ca"])
    return ctx["enrollments"]  # type: ignore[no-any-return]


def _json(rec: Any) -> dict[str, object]:
    return enrollment_json(rec, _enrollments().clock())


def _code(body: dict[str, Any]) -> str:
    code = body.get("code")
    if not isinstance(code, str) or not code:
        raise PkiError(ErrorKind.BAD_INPUT, "code (the activation code) is required", field="code")
    return code


@bp.post("/enrollments")
@operator_route("enrollments:manage")
def create() -> Response:
    """``{"subject": "CN=张三,O=...,C=CN", "profile": "client", "customer": "C0001" or
    "accounts": [...], "hours": 72}``: the code is in this answer only."""
    body = json_object(request, ("subject", "profile", "customer", "accounts", "hours"),
                       {"accounts": "strings", "hours": "integer"})
    subject = body.get("subject")
    if not isinstance(subject, str) or not subject:
        raise PkiError(ErrorKind.BAD_INPUT, "subject is required (RFC 4514)", field="subject")
    # An enrollment for a customer lets its certificate pay from their accounts: under the
    # account-binding policy its code works only once a second operator approved it.
    binds = bool(body.get("customer") or body.get("accounts"))
    approvals = current_app.extensions["udun-admin"]["approvals"]
    waits = binds and approvals.needed("account-binding") is not None
    if waits:
        approvals.may_request("account-binding", actor())      # refused before anything is made
    rec, code = _enrollments().create(subject, body.get("profile") or "client", body.get("accounts") or [],
                                      DEFAULT_HOURS if body.get("hours") is None else body["hours"], actor=actor(),
                                      customer=body.get("customer"), awaits_approval=waits)
    answer: dict[str, Any] = {**_json(rec), "code": code}
    if waits:
        from ca.approvals import approval_json
        from ca.customers import Customers

        # What the approver sees: the customer and every account the certificate will pay
        # from (a new customer's accounts are made only when approved).
        accounts = list(rec.accounts) if rec.accounts else \
            list(Customers(_enrollments().ca.store, _enrollments().clock).get(str(rec.customer_id)).accounts)
        try:
            pending = approvals.request("account-binding", {
                "change": "enrollment", "enrollment": rec.id, "customer": rec.customer_id, "subject": rec.subject,
                "profile": rec.profile, "accounts": accounts}, actor())
        except PkiError:
            _enrollments().cancel(rec.id, actor=actor())       # no request: the code must never work
            raise
        answer["approval"] = approval_json(pending)
    resp = jsonify(answer)
    resp.status_code = 201
    resp.headers["Location"] = f"/api/v1/enrollments/{rec.id}"
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/enrollments")
@operator_route("enrollments:read")
def enrollments() -> Response:
    limit = request.args.get("limit", "100")
    if set(request.args) - {"limit"} or not re.fullmatch(r"[0-9]{1,3}", limit) or not 1 <= int(limit) <= 500:
        raise PkiError(ErrorKind.BAD_INPUT, "the only parameter is limit, 1 to 500", field="limit")
    return jsonify({"items": [_json(r) for r in _enrollments().store.recent(int(limit))]})


@bp.get("/enrollments/<enrollment_id>")
@operator_route("enrollments:read")
def show(enrollment_id: str) -> Response:
    return jsonify(_json(_enrollments().get(enrollment_id)))


@bp.post("/enrollments/<enrollment_id>/cancel")
@operator_route("enrollments:manage")
def cancel(enrollment_id: str) -> Response:
    json_object(request, ())
    return jsonify(_json(_enrollments().cancel(enrollment_id, actor=actor())))


@bp.post("/enroll/lookup")
@public
def lookup() -> Response:
    """``{"code"}`` → what the CSR must say (a wrong code counts towards the lock)."""
    rec = _enrollments().open(_code(json_object(request, ("code",))))
    return jsonify({"enrollment_id": rec.id, "subject": rec.subject, "profile": rec.profile,
                    "expires_at": _json(rec)["expires_at"]})


@bp.post("/enroll")
@public
def enroll() -> Response:
    """``{"code", "csr": PEM}`` → 201 with the certificate and the CA chain (PEM), once."""
    body = json_object(request, ("code", "csr"))
    csr = body.get("csr")
    if not isinstance(csr, str) or not csr:
        raise PkiError(ErrorKind.BAD_INPUT, "csr (PEM) is required", field="csr")
    enrollments = _enrollments()
    rec, cert = enrollments.enroll(_code(body), load_csr_bytes(csr.encode()))
    assert cert.der is not None
    resp = jsonify({"enrollment_id": rec.id, "serial": cert.serial,
                    "certificate_pem": pem.armor("CERTIFICATE", cert.der).decode(),
                    "chain_pem": "".join(pem.armor("CERTIFICATE", d).decode() for d in enrollments.ca.chain_der())})
    resp.status_code = 201
    resp.headers["Location"] = f"/api/v1/certificates/{cert.serial}"
    return resp
