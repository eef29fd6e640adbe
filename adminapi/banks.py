"""Bank administration (banks:read, banks:manage): banks, their API keys (issue, rotate,
revoke), disable and enable. A new key's text is in the 201 answer only (no-store)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from ca.banks import DEFAULT_DAYS, DEFAULT_SCOPES, Banks, NewKey, bank_json, cert_json, key_json
from pkicore.errors import ErrorKind, PkiError
from webapi.auth import actor, operator_route
from webapi.bodies import json_object

bp = Blueprint("admin_banks", __name__, url_prefix="/api/v1")


def _banks() -> Banks:
    ctx: dict[str, Any] = current_app.extensions["udun-admin"]
    if "banks" not in ctx:
        ca = ctx["ca"]
        ctx["banks"] = Banks(ca.store, ca.clock)
    return ctx["banks"]  # type: ignore[no-any-return]


def _days(body: dict[str, Any]) -> int | None:
    """``days`` (absent or null: the default), or no expiry with ``"never_expires": true``
    (said in words: a client that writes unset fields as null must not get such a key)."""
    if body.get("never_expires"):
        if body.get("days") is not None:
            raise PkiError(ErrorKind.BAD_INPUT, "days or never_expires, not both", field="never_expires")
        return None
    return DEFAULT_DAYS if body.get("days") is None else int(body["days"])


def _created(payload: dict[str, Any], location: str) -> Response:
    resp = jsonify(payload)
    resp.status_code = 201
    resp.headers["Location"] = location
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _new_key(new: NewKey) -> Response:
    return _created({**key_json(new.record, _banks().clock()), "key": new.text},
                    f"/api/v1/banks/{new.record.bank}")


@bp.get("/banks")
@operator_route("banks:read")
def banks() -> Response:
    return jsonify({"items": [bank_json(b) for b in _banks().all()]})


@bp.post("/banks")
@operator_route("banks:manage")
def add_bank() -> Response:
    body = json_object(request, ("name", "display_name"))
    if not body.get("name"):
        raise PkiError(ErrorKind.BAD_INPUT, "name is required", field="name")
    bank = _banks().add(body["name"], body.get("display_name"), actor=actor())
    return _created(bank_json(bank), f"/api/v1/banks/{bank.name}")


@bp.get("/banks/<name>")
@operator_route("banks:read")
def show_bank(name: str) -> Response:
    b = _banks()
    now = b.clock()
    return jsonify({**bank_json(b.bank(name)), "keys": [key_json(k, now) for k in b.keys(name)],
                    "certificates": [cert_json(c, now) for c in b.certs.of_bank(name)]})


@bp.post("/banks/<name>/disable")
@operator_route("banks:manage")
def disable_bank(name: str) -> Response:
    json_object(request, ())
    return jsonify(bank_json(_banks().set_disabled(name, True, actor=actor())))


@bp.post("/banks/<name>/enable")
@operator_route("banks:manage")
def enable_bank(name: str) -> Response:
    json_object(request, ())
    return jsonify(bank_json(_banks().set_disabled(name, False, actor=actor())))


@bp.post("/banks/<name>/keys")
@operator_route("banks:manage")
def add_key(name: str) -> Response:
    """``{"scopes": [...], "days": N, "never_expires": false}``, all optional."""
    body = json_object(request, ("scopes", "days", "never_expires"),
                       {"scopes": "strings", "days": "integer", "never_expires": "boolean"})
    scopes = list(DEFAULT_SCOPES) if body.get("scopes") is None else body["scopes"]     # [] is refused
    return _new_key(_banks().issue_key(name, scopes, _days(body), actor=actor()))


@bp.post("/banks/<name>/certificates")
@operator_route("banks:manage")
def add_cert(name: str) -> Response:
    """``{"certificate_pem": "-----BEGIN CERTIFICATE-----...", "scopes": [...]}``: a TLS client
    certificate of the bank (udun serve with UDUN_TLS_CLIENT_AUTH)."""
    body = json_object(request, ("certificate_pem", "scopes"), {"scopes": "strings"})
    if not body.get("certificate_pem"):
        raise PkiError(ErrorKind.BAD_INPUT, "certificate_pem is required", field="certificate_pem")
    scopes = list(DEFAULT_SCOPES) if body.get("scopes") is None else body["scopes"]
    b = _banks()
    rec = b.add_cert(name, body["certificate_pem"].encode(), scopes, actor=actor())
    return _created(cert_json(rec, b.clock()), f"/api/v1/banks/{name}")


@bp.post("/bank-certificates/<sha256>/remove")
@operator_route("banks:manage")
def remove_cert(sha256: str) -> Response:
    json_object(request, ())
    b = _banks()
    return jsonify(cert_json(b.remove_cert(sha256, actor=actor()), b.clock()))


@bp.post("/bank-keys/<key_id>/rotate")
@operator_route("banks:manage")
def rotate_key(key_id: str) -> Response:
    """``{"grace_hours": 0-720 (24), "days": N, "never_expires": false}``: a new key, the old
    one ends after the grace period."""
    body = json_object(request, ("grace_hours", "days", "never_expires"),
                       {"grace_hours": "integer", "days": "integer", "never_expires": "boolean"})
    grace = body.get("grace_hours")
    grace = 24 if grace is None else grace
    if not 0 <= grace <= 720:
        raise PkiError(ErrorKind.BAD_INPUT, "grace_hours is 0 to 720", field="grace_hours")
    return _new_key(_banks().rotate_key(key_id, timedelta(hours=grace), _days(body), actor=actor()))


@bp.post("/bank-keys/<key_id>/revoke")
@operator_route("banks:manage")
def revoke_key(key_id: str) -> Response:
    json_object(request, ())
    b = _banks()
    return jsonify(key_json(b.revoke_key(key_id, actor=actor()), b.clock()))
