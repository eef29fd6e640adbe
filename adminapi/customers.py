"""Customers and account binding through the admin API (ca.customers).

Whatever gives a certificate the power to pay from an account is under dual control (the
``account-binding`` policy, ca.approvals): a customer made with accounts, an account added
to a customer, a certificate bound to a customer, a certificate issued for a customer. One
operator alone could otherwise pay from anybody's account with a key of their own. Taking
an account away is not: it only restricts.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from adminapi.approvals import run
from adminapi.services import service
from ca.customers import (Customers, checked_account, checked_accounts, checked_id, checked_name, checked_serial,
                          customer_json)
from pkicore.errors import ErrorKind, PkiError
from pkicore.pathval import load_certs
from webapi.auth import actor, operator_route
from webapi.bodies import json_object

bp = Blueprint("admin_customers", __name__, url_prefix="/api/v1")


def _customers() -> Customers:
    return service("customers", lambda ca: Customers(ca.store, ca.clock))


@bp.post("/customers")
@operator_route("customers:manage")
def add() -> Response:
    """``{"customer": "C0001", "name": "张三", "accounts": ["6222..."]}``: with accounts it
    waits for approval (202) unless the account-binding policy is off."""
    body = json_object(request, ("customer", "name", "accounts"), {"accounts": "strings"})
    customer, name = checked_id(body.get("customer")), checked_name(body.get("name"))
    accounts = checked_accounts(body.get("accounts") or [])
    if accounts:
        return run("account-binding", {"change": "customer-add", "customer": customer, "name": name,
                                       "accounts": accounts})
    rec = _customers().add(customer, name, [], actor=actor())
    resp = jsonify(customer_json(rec))
    resp.status_code = 201
    resp.headers["Location"] = f"/api/v1/customers/{rec.id}"
    return resp


@bp.get("/customers")
@operator_route("customers:read")
def find() -> Response:
    """By id (``after`` the last one of a page), or ``account``: the customer who has it."""
    unknown = sorted(set(request.args) - {"account", "after", "limit"})
    if unknown:
        raise PkiError(ErrorKind.BAD_INPUT, f"unknown query parameter {unknown[0]!r}; known: account, after, limit",
                       field=unknown[0])
    limit = request.args.get("limit", "100")
    if not re.fullmatch(r"[0-9]{1,3}", limit) or not 1 <= int(limit) <= 500:
        raise PkiError(ErrorKind.BAD_INPUT, "limit is 1 to 500", field="limit")
    found = _customers().find(int(limit), request.args.get("after"), request.args.get("account"))
    return jsonify({"items": [customer_json(c) for c in found]})


@bp.get("/customers/<customer_id>")
@operator_route("customers:read")
def show(customer_id: str) -> Response:
    return jsonify(customer_json(_customers().get(customer_id)))


@bp.post("/customers/<customer_id>/accounts")
@operator_route("customers:manage")
def add_account(customer_id: str) -> Response:
    """``{"account": "6222..."}``: waits for approval (account-binding)."""
    body = json_object(request, ("account",))
    _customers().get(customer_id)                                     # 404 before any request is made
    return run("account-binding", {"change": "account-add", "customer": checked_id(customer_id),
                                   "account": checked_account(body.get("account"))})


@bp.delete("/customers/<customer_id>/accounts/<account>")
@operator_route("customers:manage")
def remove_account(customer_id: str, account: str) -> Response:
    """The customer's certificates no longer pay from the account (at once: it only restricts)."""
    return jsonify(customer_json(_customers().remove_account(customer_id, account, actor=actor())))


@bp.post("/customers/<customer_id>/certificates")
@operator_route("customers:manage")
def bind(customer_id: str) -> Response:
    """``{"serial": "hex"}`` (this CA's) or ``{"certificate_pem": "..."}`` (another trusted
    CA's): waits for approval (account-binding)."""
    body = json_object(request, ("serial", "certificate_pem"))
    customers = _customers()
    customers.get(customer_id)
    params: dict[str, Any] = {"change": "certificate-bind", "customer": checked_id(customer_id)}
    if body.get("serial") and body.get("certificate_pem"):
        raise PkiError(ErrorKind.BAD_INPUT, "give serial or certificate_pem, not both", field="serial")
    if body.get("certificate_pem"):
        certs = load_certs(str(body["certificate_pem"]).encode())     # 400 for a broken one, now
        if len(certs) != 1:
            raise PkiError(ErrorKind.BAD_INPUT, "certificate_pem: exactly one certificate (the one the approver "
                                                "binds)", field="certificate_pem")
        params["certificate_pem"] = body["certificate_pem"]
        cert_sha256 = hashlib.sha256(certs[0]).hexdigest()
    elif body.get("serial"):
        params["serial"] = checked_serial(body["serial"])
        rec = _ctx_ca().get(params["serial"])                          # 404 for an unknown one, now
        cert_sha256 = hashlib.sha256(rec.der or b"").hexdigest()
    else:
        raise PkiError(ErrorKind.BAD_INPUT, "give serial or certificate_pem", field="serial")
    owner = customers.store.owner_of(cert_sha256)
    if owner is not None:
        raise PkiError(ErrorKind.CONFLICT, f"the certificate is bound to customer {owner} already", field="serial")
    return run("account-binding", params)


def _ctx_ca() -> Any:
    return current_app.extensions["udun-admin"]["ca"]


def account_binding(customers: Customers, issue: Any, approve_enrollment: Any) -> Any:
    """The account-binding executor (adminapi.approvals.make_approvals): ``issue(csr_pem,
    profile, customer, who)`` issues a certificate for a customer, ``approve_enrollment(id,
    who)`` lets an enrollment's code work."""
    def execute(p: dict[str, Any], who: str) -> dict[str, Any]:
        change = p["change"]
        if change == "customer-add":
            rec = customers.add(p["customer"], p["name"], p["accounts"], actor=who)
        elif change == "account-add":
            rec = customers.add_account(p["customer"], p["account"], actor=who)
        elif change == "certificate-bind":
            der = load_certs(p["certificate_pem"].encode())[0] if p.get("certificate_pem") else None
            rec = customers.bind(p["customer"], actor=who, serial=p.get("serial"), cert_der=der)
        elif change == "issue":
            return {"serial": issue(p["csr_pem"], p["profile"], p["customer"], who), "customer": p["customer"]}
        elif change == "enrollment":
            approve_enrollment(p["enrollment"], who)
            return {"enrollment_id": p["enrollment"], "customer": p["customer"], "state": "open"}
        else:
            raise PkiError(ErrorKind.INTERNAL, f"unknown account-binding change {change!r}")
        return customer_json(rec)
    return execute
