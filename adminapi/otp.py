"""Customers' OTP credentials through the admin API (ca.otpcreds): enroll (the otpauth://
URI is in that answer only), list, unlock after five failures, revoke. An OTP alone lets
nobody pay: it is asked besides the signature of the customer's own key."""
from __future__ import annotations


from flask import Blueprint, Response, jsonify, request

from adminapi.services import service
from ca.otpcreds import OtpCredentials, otp_json
from webapi.auth import actor, operator_route
from webapi.bodies import json_object

bp = Blueprint("admin_otp", __name__, url_prefix="/api/v1")


def _creds() -> OtpCredentials:
    return service("otp", lambda ca: OtpCredentials(ca.store, ca.clock, ca.settings))


@bp.post("/otp")
@operator_route("otp:manage")
def enroll() -> Response:
    """``{"customer": "C0001", "kind": "baoling" | "mobile"}``: 201 with the URI, once."""
    body = json_object(request, ("customer", "kind"))
    rec, uri = _creds().enroll(str(body.get("customer") or ""), body.get("kind") or "baoling", actor=actor())
    resp = jsonify({**otp_json(rec), "uri": uri})
    resp.status_code = 201
    resp.headers["Location"] = f"/api/v1/otp/{rec.id}"
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/otp")
@operator_route("otp:read")
def find() -> Response:
    return jsonify({"items": [otp_json(r) for r in _creds().find(request.args.get("customer"))]})


@bp.post("/otp/<credential_id>/unlock")
@operator_route("otp:manage")
def unlock(credential_id: str) -> Response:
    json_object(request, ())
    return jsonify(otp_json(_creds().unlock(credential_id, actor=actor())))


@bp.post("/otp/<credential_id>/revoke")
@operator_route("otp:manage")
def revoke(credential_id: str) -> Response:
    json_object(request, ())
    return jsonify(otp_json(_creds().revoke(credential_id, actor=actor())))
