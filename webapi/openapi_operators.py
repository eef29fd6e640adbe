"""The OpenAPI parts about operators on the admin API (`udun serve-admin`): the credential
schemes, token login, operators and their credentials, the audit log. Roles and
permissions come from ca.operators, so the document cannot drift from what a role may do."""
from __future__ import annotations

from ca.operators import DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS, PERMISSIONS, ROLES
from webapi.openapi_banks import admin_op
from webapi.openapi_parts import Json, date_time, example_problem, hdr, problem_response, ref, resp

TOKEN_PATTERN = "^udunop_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$"
SESSION_PATTERN = "^udunsess_[0-9a-f]{32}_[A-Za-z0-9_-]{43}$"


def security_schemes() -> Json:
    roles = "; ".join(f"`{role}`: {', '.join(sorted(perms))}" for role, perms in ROLES.items())
    perms = "; ".join(f"`{name}`: {text}" for name, text in PERMISSIONS.items())
    return {
        "operatorToken": {"type": "http", "scheme": "bearer", "description": (
            "An operator's API token (`udunop_...`, `udun operator token add`) or the session token of a token "
            "login (`udunsess_...`, POST /api/v1/login). In a token-login session every change (POST) must also "
            "carry `Udun-Request-Seq` (a number above every one before in the session), `Udun-Request-Scheme` "
            "(ecdsa, pkcs1, pss) and `Udun-Request-Signature` (base64): the token key's signature over "
            "pkicore.adminsig.request_message; the audit log keeps it. Each route needs one permission of the "
            f"operator's role. Roles: {roles}. Permissions: {perms}.")},
        "adminKey": {"type": "http", "scheme": "bearer", "description": (
            "UDUN_ADMIN_API_KEY (at least 32 characters), the shared key of before operators: an admin named "
            "`admin-key` in the audit log. Prefer operators' own credentials.")},
    }


def forbidden() -> Json:
    return {**problem_response(
        "the credential is valid but the operator's role lacks this route's permission",
        example_problem(403, "forbidden", "forbidden", "the role auditor does not have the 'certificates:status' "
                                                       "permission")),
        "headers": {"WWW-Authenticate": hdr("WwwAuthenticate")}}


def _object(required: list[str], properties: Json) -> Json:
    return {"type": "object", "additionalProperties": False, "required": required,  # type: ignore[dict-item]
            "properties": properties}


def schemas() -> Json:
    when = date_time
    operator = _object(["name", "role", "state", "created_at", "disabled_at", "permissions"], {
        "name": {"type": "string"}, "role": {"enum": list(ROLES)}, "state": {"enum": ["enabled", "disabled"]},
        "created_at": when("added"), "disabled_at": when("every credential refused since", nullable=True),
        "permissions": {"type": "array", "items": {"enum": list(PERMISSIONS)}}})
    token = _object(["token_id", "operator", "state", "created_at", "expires_at", "revoked_at"], {
        "token_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"}, "operator": {"type": "string"},
        "state": {"enum": ["active", "expired", "revoked"]}, "created_at": when("made"),
        "expires_at": when("refused from then on; null: never", nullable=True),
        "revoked_at": when("revoked", nullable=True)})
    cert = _object(["serial", "operator", "state", "created_at", "removed_at"], {
        "serial": {"type": "string", "pattern": "^[0-9a-f]+$"}, "operator": {"type": "string"},
        "state": {"enum": ["active", "removed"]}, "created_at": when("registered"),
        "removed_at": when("refused since", nullable=True)})
    entry = _object(["seq", "at", "action", "actor", "subject", "details", "prev_hash", "hash"], {
        "seq": {"type": "integer"}, "at": {"type": "string"}, "action": {"type": "string"},
        "actor": {"type": "string", "description": "operator:NAME, admin-key, cli:USER, bank:NAME/KEY, ..."},
        "subject": {"type": "string"},
        "details": {"type": "object", "description": "the action's facts; `signed_request` when an operator's "
                                                     "token signed the request"},
        "prev_hash": {"type": "string"}, "hash": {"type": "string"}})
    return {
        "Operator": operator,
        "OperatorList": _object(["items"], {"items": {"type": "array", "items": ref("Operator")}}),
        "OperatorDetail": {**operator, "required": [*operator["required"], "tokens", "certificates"],  # type: ignore[misc]
                           "properties": {**operator["properties"],  # type: ignore[dict-item]
                                          "tokens": {"type": "array", "items": ref("OperatorToken")},
                                          "certificates": {"type": "array", "items": ref("OperatorCertificate")}}},
        "OperatorToken": token,
        "NewOperatorToken": _object(["token_id", "operator", "token", "expires_at"], {
            "token_id": {"type": "string"}, "operator": {"type": "string"},
            "token": {"type": "string", "pattern": TOKEN_PATTERN, "description": "in this answer only, never again"},
            "expires_at": when("refused from then on; null: never", nullable=True)}),
        "OperatorCertificate": cert,
        "LoginChallenge": _object(["challenge_id", "nonce", "expires_at", "message"], {
            "challenge_id": {"type": "string"}, "nonce": {"type": "string"}, "expires_at": when("single use, until"),
            "message": {"type": "string", "description": "what the token signs, with the certificate's serial "
                                                         "(lowercase hex) in place of {serial}"}}),
        "Session": _object(["session_id", "token", "expires_at", "operator", "role"], {
            "session_id": {"type": "string"},
            "token": {"type": "string", "pattern": SESSION_PATTERN, "description": "the bearer token of the session"},
            "expires_at": when("the session ends (UDUN_OPERATOR_SESSION_MINUTES)"), "operator": {"type": "string"},
            "role": {"enum": list(ROLES)}}),
        "WhoAmI": _object(["operator", "role", "via", "permissions", "signed_requests"], {
            "operator": {"type": "string"}, "role": {"enum": list(ROLES)},
            "via": {"type": "string", "description": "token:ID, session:ID or admin-key"},
            "permissions": {"type": "array", "items": {"enum": list(PERMISSIONS)}},
            "signed_requests": {"type": "boolean", "description": "changes must be signed by the token"}}),
        "Ended": _object(["ended"], {"ended": {"type": "string"}}),
        "AuditPage": _object(["items", "next_after"], {
            "items": {"type": "array", "items": entry},
            "next_after": {"type": ["integer", "null"], "description": "pass as `after` for the next page"}}),
        "AuditVerdict": _object(["ok", "entries", "last_seq", "checkpoints", "uncovered", "last_checkpoint_at",
                                 "problems"], {
            "ok": {"type": "boolean"}, "entries": {"type": "integer"}, "last_seq": {"type": "integer"},
            "checkpoints": {"type": "integer"},
            "uncovered": {"type": "integer", "description": "entries after the newest valid checkpoint"},
            "last_checkpoint_at": when("the TSA's time of the newest valid checkpoint", nullable=True),
            "problems": {"type": "array", "items": _object(["seq", "message"], {
                "seq": {"type": ["integer", "null"]}, "message": {"type": "string"}})}}),
    }


def paths() -> Json:
    name = ("name", "the operator's name")
    empty = None
    login_challenge = admin_op(
        "loginChallenge", "A token-login challenge", "Single use, two minutes. Public (no credential).",
        "the challenge", "LoginChallenge", status="201", tag="operators", location=False,
        body={"type": "object", "additionalProperties": False, "maxProperties": 0})
    login = admin_op(
        "login", "Log in with a token", "The token key's signature over the challenge's message; the certificate "
        "must be registered to an enabled operator and good now in the CA's database (not revoked, not on hold, "
        "not expired). Public (no credential); a refusal says no more than that.", "a session", "Session",
        status="201", tag="operators", location=False,
        body=_object(["challenge_id", "serial", "signature"], {
            "challenge_id": {"type": "string"}, "serial": {"type": "string"},
            "signature": {"type": "string", "contentEncoding": "base64"},
            "scheme": {"enum": ["ecdsa", "pkcs1", "pss"], "default": "ecdsa"}}))
    for op in (login_challenge, login):
        op["security"] = []
        responses = op["responses"]
        assert isinstance(responses, dict)
        responses["429"] = resp("TooManyRequests")
    token_body = _object([], {
        "days": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_TOKEN_DAYS, "default": DEFAULT_TOKEN_DAYS},
        "never_expires": {"type": "boolean", "default": False}})
    return {
        "/api/v1/login/challenge": {"post": login_challenge},
        "/api/v1/login": {"post": login},
        "/api/v1/logout": {"post": admin_op("logout", "End this session", "Only a token-login session.", "ended",
                                            "Ended", tag="operators", body=empty)},
        "/api/v1/whoami": {"get": admin_op("whoami", "Who this credential is", "The operator, role and "
                                           "permissions.", "the operator", "WhoAmI", tag="operators")},
        "/api/v1/operators": {
            "get": admin_op("listOperators", "Every operator", "By name.", "the operators", "OperatorList",
                            tag="operators"),
            "post": admin_op("addOperator", "Add an operator", "Then give them a token or a certificate.", "added",
                             "Operator", status="201", tag="operators",
                             body=_object(["name", "role"], {"name": {"type": "string"}, "role": {"enum": list(ROLES)}}),
                             conflict="an operator named alice exists already")},
        "/api/v1/operators/{name}": {"get": admin_op(
            "showOperator", "One operator with their credentials", "Never a token itself.", "the operator",
            "OperatorDetail", path=name, tag="operators")},
        "/api/v1/operators/{name}/role": {"post": admin_op(
            "setOperatorRole", "Give an operator another role", "Never the last enabled admin away.", "changed",
            "Operator", path=name, tag="operators", body=_object(["role"], {"role": {"enum": list(ROLES)}}),
            conflict="alice is the last enabled admin: make another admin first")},
        "/api/v1/operators/{name}/disable": {"post": admin_op(
            "disableOperator", "Disable an operator", "Every credential refused from the next request on; never "
            "the last enabled admin.", "disabled", "Operator", path=name, tag="operators",
            conflict="alice is the last enabled admin: make another admin first")},
        "/api/v1/operators/{name}/enable": {"post": admin_op(
            "enableOperator", "Enable an operator again", "", "enabled", "Operator", path=name, tag="operators",
            conflict="alice is enabled already")},
        "/api/v1/operators/{name}/tokens": {"post": admin_op(
            "addOperatorToken", "A new API token", "In this answer only (Cache-Control: no-store).", "the token",
            "NewOperatorToken", status="201", path=name, tag="operators", body=token_body)},
        "/api/v1/operator-tokens/{token_id}/revoke": {"post": admin_op(
            "revokeOperatorToken", "Revoke an API token", "Never the last credential any admin can log in with.",
            "revoked", "OperatorToken", path=("token_id", "the token's id (the hex after `udunop_`)"),
            tag="operators", conflict="token 0f3a9c2e7b1d4a55 is revoked already")},
        "/api/v1/operators/{name}/certificates": {"post": admin_op(
            "addOperatorCertificate", "Register a token certificate", "A certificate udun issued and good now; its "
            "key (on the operator's token) logs them in.", "registered", "OperatorCertificate", status="201",
            path=name, tag="operators", body=_object(["serial"], {"serial": {"type": "string"}}),
            conflict="certificate 2f0c... belongs to an operator already")},
        "/api/v1/operator-certificates/{serial}/remove": {"post": admin_op(
            "removeOperatorCertificate", "Stop a certificate logging anyone in", "Its open sessions end.", "removed",
            "OperatorCertificate", path=("serial", "hex"), tag="operators",
            conflict="certificate 2f0c... was removed already")},
        "/api/v1/audit": {"get": {**admin_op(
            "readAudit", "Audit log entries", "By sequence number, `after` (0) and `limit` (1-500, 100).", "a page",
            "AuditPage", tag="audit"), "parameters": [
                {"name": "after", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}}]}},
        "/api/v1/audit/verify": {"get": admin_op(
            "verifyAudit", "Verify the audit log", "The hash chain and the signed checkpoints, checked now (as "
            "`udun audit verify`).", "the verdict", "AuditVerdict", tag="audit")},
    }


def with_forbidden(paths_: Json) -> Json:
    """Every secured operation can answer 403 (a role without the permission)."""
    out: Json = {}
    for path, item in paths_.items():
        assert isinstance(item, dict)
        methods: Json = {}
        for method, op in item.items():
            assert isinstance(op, dict) and isinstance(op["responses"], dict)
            methods[method] = op if op.get("security") == [] else \
                {**op, "responses": {**op["responses"], "403": resp("Forbidden")}}
        out[path] = methods
    return out
