"""Operators through the admin API: log in with a token (challenge, then the signed
challenge), log out, who am I; operators, their API tokens and token certificates; the
audit log read and verified. A new token's or session's text is in the 201 answer only."""
from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from ca import audit
from adminapi.approvals import requested
from ca.operators import DEFAULT_TOKEN_DAYS, Operators, cert_json, checked_name, checked_role, operator_json, \
    token_json
from ca.storage.operators import ADMIN
from pkicore.adminsig import login_message
from pkicore.clock import rfc3339
from pkicore.errors import ErrorKind, PkiError
from webapi.auth import actor, operator_route, public
from webapi.bodies import json_object

bp = Blueprint("admin_operators", __name__, url_prefix="/api/v1")
AUDIT_PAGE = 500
_NUMBER = re.compile(r"[0-9]{1,18}")            # str.isdigit() takes "²", which int() refuses


def _ops() -> Operators:
    return current_app.extensions["udun-admin"]["operators"]  # type: ignore[no-any-return]


def _created(payload: dict[str, Any], location: str | None = None) -> Response:
    resp = jsonify(payload)
    resp.status_code = 201
    if location:
        resp.headers["Location"] = location
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _required(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise PkiError(ErrorKind.BAD_INPUT, f"{name} is required (a string)", field=name)
    return value


# --- login ------------------------------------------------------------------------------

@bp.post("/login/challenge")
@public
def login_challenge() -> Response:
    """A single-use challenge for a token login; ``message`` is what the token signs, with
    the certificate's serial in place of ``{serial}``."""
    json_object(request, ())
    ch = _ops().challenge(request.remote_addr)
    return _created({"challenge_id": ch.id, "nonce": ch.nonce, "expires_at": rfc3339(ch.expires_at),
                     "message": login_message(ch.id, ch.nonce, "{serial}").decode()})


@bp.post("/login")
@public
def login() -> Response:
    """``{"challenge_id", "serial", "signature": base64, "scheme": "ecdsa"|"pkcs1"|"pss"}``:
    a session token for the operator whose certificate signed the challenge."""
    body = json_object(request, ("challenge_id", "serial", "signature", "scheme"))
    ops = _ops()
    new = ops.login(_required(body, "challenge_id"), _required(body, "serial"), _required(body, "signature"),
                    body.get("scheme") or "ecdsa")
    who = ops.authenticate(new.text)
    assert new.expires_at is not None
    return _created({"session_id": new.id, "token": new.text, "expires_at": rfc3339(new.expires_at),
                     "operator": who.name, "role": who.role})


@bp.post("/logout")
@operator_route("self")
def logout() -> Response:
    json_object(request, ())
    _ops().logout(g.operator)
    return jsonify({"ended": g.operator.via})


@bp.get("/whoami")
@operator_route("self")
def whoami() -> Response:
    who = g.operator
    return jsonify({"operator": who.name, "role": who.role, "via": who.via,
                    "permissions": sorted(who.permissions),
                    "signed_requests": who.session is not None})


# --- operators and their credentials ----------------------------------------------------

@bp.get("/operators")
@operator_route("operators:read")
def operators() -> Response:
    return jsonify({"items": [operator_json(op) for op in _ops().all()]})


@bp.post("/operators")
@operator_route("operators:manage")
def add_operator() -> Response:
    body = json_object(request, ("name", "role"))
    name, role = checked_name(_required(body, "name")), checked_role(_required(body, "role"))
    if role == ADMIN:                                    # dual control: admin-change
        pending = requested("admin-change", {"change": "add", "name": name, "role": role})
        if pending is not None:
            return pending
    op = _ops().add(name, role, actor=actor())
    return _created(operator_json(op), f"/api/v1/operators/{op.name}")


@bp.get("/operators/<name>")
@operator_route("operators:read")
def show_operator(name: str) -> Response:
    ops = _ops()
    now = ops.clock()
    return jsonify({**operator_json(ops.operator(name)),
                    "tokens": [token_json(t, now) for t in ops.store.tokens(name)],
                    "certificates": [cert_json(c) for c in ops.store.certs(name)]})


@bp.post("/operators/<name>/role")
@operator_route("operators:manage")
def set_role(name: str) -> Response:
    body = json_object(request, ("role",))
    role = checked_role(_required(body, "role"))
    if ADMIN in (role, _ops().operator(name).role):      # to or from admin: admin-change
        pending = requested("admin-change", {"change": "role", "name": name, "role": role})
        if pending is not None:
            return pending
    return jsonify(operator_json(_ops().set_role(name, role, actor=actor())))


@bp.post("/operators/<name>/disable")
@operator_route("operators:manage")
def disable(name: str) -> Response:
    json_object(request, ())
    if _ops().operator(name).role == ADMIN:              # disabling an admin: admin-change
        pending = requested("admin-change", {"change": "disable", "name": name})
        if pending is not None:
            return pending
    return jsonify(operator_json(_ops().set_disabled(name, True, actor=actor())))


@bp.post("/operators/<name>/enable")
@operator_route("operators:manage")
def enable(name: str) -> Response:
    json_object(request, ())
    if _ops().operator(name).role == ADMIN:              # an admin back: admin-change
        pending = requested("admin-change", {"change": "enable", "name": name})
        if pending is not None:
            return pending
    return jsonify(operator_json(_ops().set_disabled(name, False, actor=actor())))


@bp.post("/operators/<name>/tokens")
@operator_route("operators:manage")
def add_token(name: str) -> Response:
    """``{"days": N (90), "never_expires": false}``: the token's text, shown once."""
    body = json_object(request, ("days", "never_expires"), {"days": "integer", "never_expires": "boolean"})
    if body.get("never_expires") and body.get("days") is not None:
        raise PkiError(ErrorKind.BAD_INPUT, "days or never_expires, not both", field="never_expires")
    days = None if body.get("never_expires") else (DEFAULT_TOKEN_DAYS if body.get("days") is None else body["days"])
    if _ops().operator(name).role == ADMIN and name != g.operator.name:
        # Its text would be in somebody else's hands: an admin makes their own tokens (or
        # the CA machine's console does), never another admin's.
        raise PkiError(ErrorKind.FORBIDDEN, f"{name} is an admin: only they (or `udun operator token add` on the CA "
                                            "machine) can make a token for them")
    new = _ops().issue_token(name, days, actor=actor())
    return _created({"token_id": new.id, "operator": name, "token": new.text,
                     "expires_at": rfc3339(new.expires_at) if new.expires_at else None},
                    f"/api/v1/operators/{name}")


@bp.post("/operator-tokens/<token_id>/revoke")
@operator_route("operators:manage")
def revoke_token(token_id: str) -> Response:
    json_object(request, ())
    ops = _ops()
    found = ops.store.token(token_id)
    if found is not None and found.operator.role == ADMIN and found.operator.name != g.operator.name:
        pending = requested("admin-change", {"change": "revoke-token", "token_id": token_id,
                                             "name": found.operator.name})
        if pending is not None:
            return pending
    return jsonify(token_json(ops.revoke_token(token_id, actor=actor()), ops.clock()))


@bp.post("/operators/<name>/certificates")
@operator_route("operators:manage")
def add_cert(name: str) -> Response:
    """``{"serial": "..."}``: a certificate udun issued, its key on the operator's token."""
    body = json_object(request, ("serial",))
    serial = _required(body, "serial").lower().removeprefix("0x")
    if _ops().operator(name).role == ADMIN and name != g.operator.name:     # a login for an admin: admin-change
        pending = requested("admin-change", {"change": "add-cert", "name": name, "serial": serial})
        if pending is not None:
            return pending
    rec = _ops().add_cert(name, serial, actor=actor())
    return _created(cert_json(rec), f"/api/v1/operators/{name}")


@bp.post("/operator-certificates/<serial>/remove")
@operator_route("operators:manage")
def remove_cert(serial: str) -> Response:
    json_object(request, ())
    found = _ops().store.cert(serial.lower().removeprefix("0x"))
    if found is not None and found.operator.role == ADMIN and found.operator.name != g.operator.name:
        pending = requested("admin-change", {"change": "remove-cert", "serial": found.serial,
                                             "name": found.operator.name})
        if pending is not None:
            return pending
    return jsonify(cert_json(_ops().remove_cert(serial, actor=actor())))


# --- the audit log -----------------------------------------------------------------------

@bp.get("/audit")
@operator_route("audit:read")
def audit_entries() -> Response:
    """Entries by sequence number: ``after`` (0), ``limit`` (100, at most 500)."""
    args = request.args
    unknown = sorted(set(args) - {"after", "limit"})
    if unknown:
        raise PkiError(ErrorKind.BAD_INPUT, f"unknown query parameter {unknown[0]!r}; known: after, limit",
                       field=unknown[0])
    after, limit = args.get("after", "0"), args.get("limit", "100")
    if not _NUMBER.fullmatch(after) or not _NUMBER.fullmatch(limit) or not 1 <= int(limit) <= AUDIT_PAGE:
        raise PkiError(ErrorKind.BAD_INPUT, f"after is a sequence number, limit 1 to {AUDIT_PAGE}", field="limit")
    from ca.storage.audit import AuditStore

    entries = AuditStore(current_app.extensions["udun-admin"]["ca"].store).entries(int(after), int(limit))
    return jsonify({"items": [e.to_json() for e in entries],
                    "next_after": entries[-1].seq if len(entries) == int(limit) else None})


@bp.get("/audit/verify")
@operator_route("audit:read")
def audit_verify() -> Response:
    """The hash chain and the signed checkpoints, checked now (as `udun audit verify`)."""
    verdict = audit.verify(current_app.extensions["udun-admin"]["ca"])
    return jsonify({"ok": verdict.ok, "entries": verdict.entries, "last_seq": verdict.last_seq,
                    "checkpoints": verdict.checkpoints, "uncovered": verdict.uncovered,
                    "last_checkpoint_at": rfc3339(verdict.last_checkpoint_at) if verdict.last_checkpoint_at
                    else None, "problems": [{"seq": p.seq, "message": p.message} for p in verdict.problems]})
