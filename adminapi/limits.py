"""Transaction limits through the admin API (ca.limits, ca.limitpolicy). A raise — a
profile's limit made higher, or a customer's set above their profile's — waits for a second
operator (the ``limit-raise`` policy); lowering takes effect at once. Profiles' limits are
an admin's (``limits:profile``), customers' an operator's (``limits:manage``)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from adminapi.approvals import run
from adminapi.services import service
from ca.limitpolicy import LimitPolicy, checked_currency
from ca.limits import limit_json, parse_amount, usage_json
from pkicore.errors import ErrorKind, PkiError
from webapi.auth import actor, operator_route
from webapi.bodies import json_object

bp = Blueprint("admin_limits", __name__, url_prefix="/api/v1")


def _policy() -> LimitPolicy:
    return service("limits", lambda ca: LimitPolicy(ca.store, ca.clock))


@bp.get("/limits")
@operator_route("limits:read")
def find() -> Response:
    """``scope`` (profile | customer) and ``subject`` narrow the list; udun's defaults are listed
    while no row replaces them."""
    unknown = sorted(set(request.args) - {"scope", "subject"})
    if unknown:
        raise PkiError(ErrorKind.BAD_INPUT, f"unknown query parameter {unknown[0]!r}; known: scope, subject",
                       field=unknown[0])
    scope = request.args.get("scope")
    if scope not in (None, "profile", "customer"):
        raise PkiError(ErrorKind.BAD_INPUT, "scope is profile or customer", field="scope")
    return jsonify({"items": [limit_json(lim) for lim in _policy().find(scope, request.args.get("subject"))]})


@bp.post("/limits")
@operator_route("limits:manage")
def put() -> Response:
    """``{"scope": "customer", "subject": "C0001", "currency": "CNY", "per_payment": "50000.00",
    "per_day": "200000.00"}``: replaces that scope's limits in the currency."""
    body = json_object(request, ("scope", "subject", "currency", "per_payment", "per_day"))
    scope = body.get("scope") or "customer"
    if scope == "profile" and "limits:profile" not in g.operator.permissions:
        raise PkiError(ErrorKind.FORBIDDEN, "a profile's limits need the permission limits:profile (admins)")
    policy = _policy()
    lim = policy.checked(scope, str(body.get("subject") or ""), checked_currency(body.get("currency") or "CNY"),
                         parse_amount(body.get("per_payment"), "per_payment"), parse_amount(body.get("per_day"), "per_day"))
    params = {"scope": lim.scope, "subject": lim.subject, "currency": lim.currency,
              "per_payment": body.get("per_payment") or None, "per_day": body.get("per_day") or None}
    if policy.raises(lim):
        return run("limit-raise", params)
    return jsonify({"result": limit_json(policy.put(lim, actor=actor()))})


@bp.delete("/limits/customer/<customer_id>/<currency>")
@operator_route("limits:manage")
def remove(customer_id: str, currency: str) -> Response:
    """A customer's own limits go and the profile's apply again: when those allow more than
    the customer's own did (a cut lifted), that waits for a second operator (limit-raise)."""
    policy = _policy()
    if policy.raises(None, scope="customer", subject=customer_id, currency=checked_currency(currency)):
        return run("limit-raise", {"scope": "customer", "subject": customer_id, "currency": currency,
                                   "remove": True})
    policy.remove("customer", customer_id, currency, actor=actor())
    return jsonify({"removed": {"customer": customer_id, "currency": currency}})


@bp.get("/limits/usage")
@operator_route("limits:read")
def usage() -> Response:
    """``customer``: what they paid per day and currency, newest first (31 days)."""
    customer = request.args.get("customer")
    if not customer:
        raise PkiError(ErrorKind.BAD_INPUT, "customer is required", field="customer")
    return jsonify({"customer": customer,
                    "items": [usage_json(*u) for u in _policy().usage(customer)]})


def limit_raise(policy: LimitPolicy) -> Any:
    """The limit-raise executor (adminapi.approvals.make_approvals)."""
    def execute(p: dict[str, Any], who: str) -> dict[str, Any]:
        if p.get("remove"):
            policy.remove("customer", p["subject"], p["currency"], actor=who)
            return {"removed": {"customer": p["subject"], "currency": p["currency"]}}
        lim = policy.checked(p["scope"], p["subject"], p["currency"], parse_amount(p["per_payment"], "per_payment"),
                             parse_amount(p["per_day"], "per_day"))
        return limit_json(policy.put(lim, actor=who))
    return execute
