"""Dual control through the admin API: the approval requests (list, show, approve, reject),
the policies, and the sensitive actions that go through them (ca.approvals). A guarded
route answers 202 with the request when its policy asks for approvals, and runs at once
(through the same executor) when it does not."""
from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from ca.approvals import ACTIONS, Approvals, Executor, approval_json, policy_json
from ca.operators import Operators
from ca.policy import load_csr_bytes
from pkicore.clock import rfc3339
from pkicore.errors import ErrorKind, PkiError
from webapi.auth import actor, operator_route
from webapi.bodies import json_object, parse_time

bp = Blueprint("admin_approvals", __name__, url_prefix="/api/v1")


def _ctx() -> dict[str, Any]:
    return current_app.extensions["udun-admin"]  # type: ignore[no-any-return]


def _approvals() -> Approvals:
    return _ctx()["approvals"]  # type: ignore[no-any-return]


def make_approvals(ctx: dict[str, Any]) -> Approvals:
    """The app's Approvals with an executor per action, on the app's CA and operators."""
    ca = ctx["ca"]
    ops: Operators = ctx["operators"]

    def revocation() -> Any:
        from ca.revocation import Revocation

        if "revocation" not in ctx:
            ctx["revocation"] = Revocation(ca)
        return ctx["revocation"]

    def ca_revoke(p: dict[str, Any], who: str) -> dict[str, Any]:
        invalidity = parse_time(p["invalidity_date"], "invalidity_date") if p.get("invalidity_date") else None
        rec = revocation().revoke_issuing_ca(p["reason"], invalidity, actor=who)
        return {"serial": rec.serial, "status": rec.status}

    def admin_change(p: dict[str, Any], who: str) -> dict[str, Any]:
        change = p["change"]
        if change == "add":
            op = ops.add(p["name"], p["role"], actor=who)
        elif change == "role":
            op = ops.set_role(p["name"], p["role"], actor=who)
        elif change in ("disable", "enable"):
            op = ops.set_disabled(p["name"], change == "disable", actor=who)
        elif change == "add-cert":
            op = ops.add_cert(p["name"], p["serial"], actor=who).operator
        elif change == "remove-cert":
            op = ops.remove_cert(p["serial"], actor=who).operator
        elif change == "revoke-token":
            op = ops.revoke_token(p["token_id"], actor=who).operator
        else:
            raise PkiError(ErrorKind.INTERNAL, f"unknown admin change {change!r}")
        return {"operator": op.name, "role": op.role, "disabled": op.disabled_at is not None, "change": change}

    def policy_change(p: dict[str, Any], who: str) -> dict[str, Any]:
        approvals: Approvals = ctx["approvals"]
        policy = approvals.checked_policy(p["action"], p["changes"])
        return policy_json(approvals.set_policy(policy, who))

    def bulk_revoke(p: dict[str, Any], who: str) -> dict[str, Any]:
        done, already = revocation().revoke_many(p["serials"], p["reason"], actor=who)
        return {"revoked": [r.serial for r in done], "already_revoked": already}

    def sensitive_issue(p: dict[str, Any], who: str) -> dict[str, Any]:
        rec = ca.issue(load_csr_bytes(p["csr_pem"].encode()), p["profile"], requester=who)
        return {"serial": rec.serial}

    def issue_for(csr_pem: str, profile: str, customer: str, who: str) -> str:
        approvals: Approvals = ctx["approvals"]
        if profile in approvals.policy("sensitive-issue").profiles:     # the policy changed since the request
            raise PkiError(ErrorKind.CONFLICT, f"profile {profile} is under the sensitive-issue policy now")
        return str(ca.issue(load_csr_bytes(csr_pem.encode()), profile, requester=who, customer=customer).serial)

    from adminapi.customers import account_binding
    from adminapi.limits import limit_raise
    from ca.limitpolicy import LimitPolicy
    from ca.customers import Customers
    from ca.enrollments import Enrollments

    def approve_enrollment(enrollment_id: str, who: str) -> None:
        Enrollments(ca).approve(enrollment_id, actor=who)

    executors: dict[str, Executor] = {"ca-revoke": ca_revoke, "admin-change": admin_change,
                                      "policy-change": policy_change, "bulk-revoke": bulk_revoke,
                                      "sensitive-issue": sensitive_issue,
                                      "account-binding": account_binding(Customers(ca.store, ca.clock), issue_for,
                                                                         approve_enrollment),
                                      "limit-raise": limit_raise(LimitPolicy(ca.store, ca.clock))}
    assert set(executors) == set(ACTIONS)
    return Approvals(ca.store, ca.clock, executors, ops.eligible)


def requested(action: str, params: dict[str, Any]) -> Response | None:
    """202 with a new request when ``action`` needs approval now; None: go on at once."""
    approvals = _approvals()
    if approvals.needed(action) is None:
        return None
    rec = approvals.request(action, params, actor())
    resp = jsonify({"approval": approval_json(rec)})
    resp.status_code = 202                              # RFC 9110 §15.3.3: accepted, not done
    resp.headers["Location"] = f"/api/v1/approvals/{rec.id}"
    return resp


def run(action: str, params: dict[str, Any]) -> Response:
    """The action now: through its approval when the policy asks for one, else at once."""
    pending = requested(action, params)
    if pending is not None:
        return pending
    return jsonify({"result": _approvals().executors[action](params, actor())})


# --- requests ----------------------------------------------------------------------------

@bp.get("/approvals")
@operator_route("approvals:read")
def approvals() -> Response:
    """Newest first; ``state`` (pending, approved, executed, rejected, expired, ...)."""
    unknown = sorted(set(request.args) - {"state", "limit"})
    if unknown:
        raise PkiError(ErrorKind.BAD_INPUT, f"unknown query parameter {unknown[0]!r}; known: state, limit",
                       field=unknown[0])
    limit = request.args.get("limit", "100")
    if not re.fullmatch(r"[0-9]{1,3}", limit) or not 1 <= int(limit) <= 500:
        raise PkiError(ErrorKind.BAD_INPUT, "limit is 1 to 500", field="limit")
    return jsonify({"items": [approval_json(a) for a in _approvals().find(request.args.get("state"), int(limit))]})


@bp.get("/approvals/<approval_id>")
@operator_route("approvals:read")
def show(approval_id: str) -> Response:
    return jsonify(approval_json(_approvals().get(approval_id)))


def _comment(body: dict[str, Any]) -> str | None:
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > 500):
        raise PkiError(ErrorKind.BAD_INPUT, "comment is text of at most 500 characters", field="comment")
    return comment  # type: ignore[no-any-return]


@bp.post("/approvals/<approval_id>/approve")
@operator_route("approvals:decide")
def approve(approval_id: str) -> Response:
    """``{"params_sha256": what you were shown, "comment": "..."}``; the approval that
    completes the request executes it, and this answer shows the result."""
    body = json_object(request, ("params_sha256", "comment"))
    digest = body.get("params_sha256")
    if not isinstance(digest, str) or not digest:
        raise PkiError(ErrorKind.BAD_INPUT, "params_sha256 (of the request you approve) is required",
                       field="params_sha256")
    who = g.operator
    return jsonify(approval_json(_approvals().approve(approval_id, who.actor, who.role, digest, _comment(body),
                                                      who.made_by)))


@bp.post("/approvals/<approval_id>/reject")
@operator_route("approvals:decide")
def reject(approval_id: str) -> Response:
    body = json_object(request, ("comment",))
    return jsonify(approval_json(_approvals().reject(approval_id, g.operator.actor, g.operator.role, _comment(body))))


# --- policies ----------------------------------------------------------------------------

@bp.get("/approval-policies")
@operator_route("approvals:read")
def policies() -> Response:
    return jsonify({"items": [policy_json(p) for p in _approvals().policies().values()]})


@bp.post("/approval-policies/<action>")
@operator_route("policies:manage")
def set_policy(action: str) -> Response:
    """``{"approvals": 0-5, "roles": [...], "expires_hours": N, "threshold": N, "profiles": [...]}``
    (any of them): under the policy-change policy itself."""
    body = json_object(request, ("approvals", "roles", "expires_hours", "threshold", "profiles"),
                       {"approvals": "integer", "roles": "strings", "expires_hours": "integer", "threshold": "integer",
                        "profiles": "strings"})
    changes = {k: v for k, v in body.items() if v is not None}
    _approvals().checked_policy(action, changes)              # refused now, not after the approvals
    return run("policy-change", {"action": action, "changes": changes})


# --- the guarded actions that have no route elsewhere -------------------------------------

@bp.post("/authorities/issuing/revoke")
@operator_route("ca:revoke")
def revoke_issuing_ca() -> Response:
    """``{"reason": "cACompromise" (default) | "keyCompromise" | ..., "invalidity_date": RFC 3339}``."""
    from pkicore.crlbuild import REVOKE_REASONS

    body = json_object(request, ("reason", "invalidity_date"))
    reason = body.get("reason") or "cACompromise"
    if reason not in REVOKE_REASONS:
        raise PkiError(ErrorKind.BAD_INPUT, f"reason is one of {', '.join(REVOKE_REASONS)}", field="reason")
    invalidity = None
    if body.get("invalidity_date"):                       # checked now, not after the approvals
        moment = parse_time(body["invalidity_date"], "invalidity_date")
        if moment > _ctx()["ca"].clock():
            raise PkiError(ErrorKind.BAD_INPUT, "invalidity_date cannot be in the future", field="invalidity_date")
        invalidity = rfc3339(moment)
    return run("ca-revoke", {"reason": reason, "invalidity_date": invalidity})


@bp.post("/certificates/revoke")
@operator_route("certificates:status")
def revoke_many() -> Response:
    """``{"serials": [...], "reason": "..."}``: more than the bulk-revoke policy's threshold
    needs approval."""
    from pkicore.crlbuild import REVOKE_REASONS

    body = json_object(request, ("serials", "reason"), {"serials": "strings"})
    serials = [s.lower().removeprefix("0x") for s in body.get("serials") or []]
    if not serials or len(serials) > 10_000 or len(set(serials)) != len(serials):
        raise PkiError(ErrorKind.BAD_INPUT, "serials: 1 to 10000 distinct serials", field="serials")
    reason = body.get("reason") or "unspecified"
    if reason not in REVOKE_REASONS:
        raise PkiError(ErrorKind.BAD_INPUT, f"reason is one of {', '.join(REVOKE_REASONS)}", field="reason")
    ca = _ctx()["ca"]
    ops: Operators = _ctx()["operators"]
    for serial in serials:
        ca.get(serial)                                          # 404 for an unknown one, before anything
        ops.check_status_change(serial, g.operator)             # an operator's login certificate: admins only
    params = {"serials": serials, "reason": reason}
    threshold = _approvals().policy("bulk-revoke").threshold or 0
    if len(serials) > threshold:
        pending = requested("bulk-revoke", params)
        if pending is not None:
            return pending
    return jsonify({"result": _approvals().executors["bulk-revoke"](params, actor())})


def issue_needs_approval(profile: str, csr_pem: str, customer: str | None = None) -> Response | None:
    """adminapi.views.issue: a profile the sensitive-issue policy names waits for approval;
    so does a certificate for a customer (account-binding: it can pay from their accounts)."""
    from ca.profiles import REQUESTABLE

    if profile not in REQUESTABLE:                  # refused now, not after the approvals
        raise PkiError(ErrorKind.BAD_INPUT, f"unknown profile {profile!r}; known: {', '.join(REQUESTABLE)}",
                       field="profile")
    sensitive = profile in _approvals().policy("sensitive-issue").profiles
    if customer is not None:
        if sensitive:                               # one request cannot carry both policies' approvals
            raise PkiError(ErrorKind.CONFLICT, f"profile {profile} is under the sensitive-issue policy: issue it "
                                               "without a customer, then bind it (POST /api/v1/customers/{id}/"
                                               "certificates)")
        return requested("account-binding", {"change": "issue", "profile": profile, "csr_pem": csr_pem,
                                             "customer": customer})
    if not sensitive:
        return None
    return requested("sensitive-issue", {"profile": profile, "csr_pem": csr_pem})
