"""The OpenAPI parts about banks: the bank key scheme and its 401/403 answers on the bank
routes (`udun serve`), and bank administration on the admin API (`udun serve-admin`).
Scopes come from ca.banks.SCOPES, so the document cannot drift from what a key may hold."""
from __future__ import annotations

from ca.banks import DEFAULT_DAYS, DEFAULT_SCOPES, MAX_DAYS, SCOPES
from webapi.openapi_parts import Json, JsonValue, date_time, example_problem, hdr, header, json_body, problem_response, ref, resp

KEY_PATTERN = "^udun_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$"


def bank_key_scheme() -> Json:
    scopes = "; ".join(f"`{name}`: {what}" for name, what in SCOPES.items())
    return {"type": "http", "scheme": "bearer",
            "description": "A bank's API key (`udun bank key add`, or POST /api/v1/banks/{name}/keys on the admin "
                           f"API) as an RFC 6750 bearer token. Each route needs one scope: {scopes}."}


def bank_responses() -> Json:
    """401 and 403 of a bank route (components/responses)."""
    return {
        "BankUnauthorized": {**problem_response(
            "no bank API key, or one that is not valid now (unknown, revoked, expired, its bank disabled); "
            "nothing was read or stored",
            example_problem(401, "unauthorized", "unauthorized", "the API key is not valid")),
            "headers": {"WWW-Authenticate": hdr("WwwAuthenticate")}},
        "BankForbidden": {**problem_response(
            "the key is valid but lacks this route's scope (RFC 6750 §3.1 insufficient_scope)",
            example_problem(403, "forbidden", "forbidden", "this key does not have the 'verify' scope")),
            "headers": {"WWW-Authenticate": hdr("WwwAuthenticate")}},
    }


def secured(operation: Json, scope: str) -> Json:
    """A bank route's operation with its scope, and the 401 and 403 it can answer."""
    responses = dict(operation["responses"])  # type: ignore[arg-type]
    responses.update({"401": resp("BankUnauthorized"), "403": resp("BankForbidden")})
    return {**operation, "security": [{"bankKey": [scope]}], "responses": responses,
            "description": f"{operation['description']} Needs a bank API key with the `{scope}` scope."}


def bank_certificate_schema() -> Json:
    """GET /api/v1/certificates/{serial} on `udun serve` (webapi.views.certificates)."""
    from ca.certquery import STATUSES

    when: Json = {"type": ["string", "null"], "format": "date-time"}
    return {"type": "object", "additionalProperties": False,
            "required": ["serial", "status", "profile", "subject", "not_before", "not_after", "revoked_at",
                         "revocation_reason", "invalidity_date", "certificate_pem"],
            "properties": {"serial": {"type": "string", "pattern": "^[0-9a-f]+$"}, "status": {"enum": list(STATUSES)},
                           "profile": {"type": "string"}, "subject": {"type": "string"},
                           "not_before": date_time("notBefore"), "not_after": date_time("notAfter"),
                           "revoked_at": {**when, "description": "revocation or hold time"},
                           "revocation_reason": {"type": ["string", "null"]},
                           "invalidity_date": {**when, "description": "RFC 5280 §5.3.2"},
                           "certificate_pem": {"type": "string"}}}


def evidence_page_schema() -> Json:
    item: Json = {"type": "object", "additionalProperties": False,
                  "required": ["evidence_id", "received_at", "bank", "signer_serial", "tx_id"],
                  "properties": {"evidence_id": {"type": "string", "pattern": "^ev_[0-9a-f]{32}$"},
                                 "received_at": date_time("when the verify call came"),
                                 "bank": {"type": ["string", "null"],
                                          "description": "the bank whose call stored it; null: from before banks"},
                                 "signer_serial": {"type": "string"}, "tx_id": {"type": "string"}}}
    return {"type": "object", "additionalProperties": False, "required": ["items", "next_cursor"],
            "properties": {"items": {"type": "array", "items": item},
                           "next_cursor": {"type": ["string", "null"],
                                           "description": "pass as `cursor` for the next page; null: the last"}}}


def evidence_search_operation(operator: bool) -> Json:
    def param(name: str, description: str) -> Json:
        return {"name": name, "in": "query", "required": False, "schema": {"type": "string"},
                "description": description}

    params: list[JsonValue] = [param("tx_id", "exactly this tx_id"), param("signer_serial", "signed under this certificate (hex)"),
              param("received_after", "received at or after (a date or RFC 3339)"),
              param("received_before", "received before"),
              {"name": "limit", "in": "query", "required": False,
               "schema": {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 100}},
              param("cursor", "`next_cursor` of the page before")]
    if operator:
        params.insert(0, param("bank", "only this bank's records"))
    return {"tags": ["evidence"], "operationId": "searchEvidence",
            "summary": "Find evidence records" + ("" if operator else " of this bank"),
            "description": ("Every bank's records, newest first; the same as `udun evidence list`." if operator else
                            "This bank's own records only, newest first.") +
                           " Filters combine (AND); an unknown parameter or a bad value is a 400 naming the `field`.",
            "parameters": params,
            "responses": {"200": {"description": "a page", "content": json_body(ref("EvidencePage"))},
                          "400": resp("BadInput"), "401": resp("Unauthorized"), "500": resp("Internal"),
                          "503": resp("Unavailable")}}


# --- the admin API ------------------------------------------------------------------------

def admin_schemas() -> Json:
    bank: Json = {"type": "object", "additionalProperties": False,
                  "required": ["name", "display_name", "created_at", "disabled_at", "state"],
                  "properties": {"name": {"type": "string", "pattern": "^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"},
                                 "display_name": {"type": "string"}, "created_at": date_time("registered"),
                                 "disabled_at": date_time("every key refused since", nullable=True),
                                 "state": {"enum": ["enabled", "disabled"]}}}
    key: Json = {"type": "object", "additionalProperties": False,
                 "required": ["key_id", "bank", "scopes", "state", "created_at", "expires_at", "revoked_at",
                              "replaced_by"],
                 "properties": {"key_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"}, "bank": {"type": "string"},
                                "scopes": {"type": "array", "items": {"enum": list(SCOPES)}},
                                "state": {"enum": ["active", "expired", "revoked", "bank-disabled"]},
                                "created_at": date_time("made"),
                                "expires_at": date_time("refused from then on; null: never", nullable=True),
                                "revoked_at": date_time("revoked", nullable=True),
                                "replaced_by": {"type": ["string", "null"], "description": "the key a rotation made"}}}
    new_key: Json = {**key, "required": [*key["required"], "key"],  # type: ignore[misc]
                     "properties": {**key["properties"],  # type: ignore[dict-item]
                                    "key": {"type": "string", "pattern": KEY_PATTERN,
                                            "description": "the key itself: in this answer only, never again"}}}
    cert: Json = {"type": "object", "additionalProperties": False,
                  "required": ["sha256", "bank", "subject", "scopes", "state", "not_after", "created_at", "removed_at"],
                  "properties": {"sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "bank": {"type": "string"},
                                 "subject": {"type": "string"},
                                 "scopes": {"type": "array", "items": {"enum": list(SCOPES)}},
                                 "state": {"enum": ["active", "expired", "removed", "bank-disabled"]},
                                 "not_after": date_time("the certificate's notAfter"),
                                 "created_at": date_time("registered"),
                                 "removed_at": date_time("refused since", nullable=True)}}
    return {
        "Bank": bank, "BankKey": key, "NewBankKey": new_key, "BankCertificate": cert,
        "BankDetail": {**bank, "required": [*bank["required"], "keys", "certificates"],  # type: ignore[misc]
                       "properties": {**bank["properties"],  # type: ignore[dict-item]
                                      "keys": {"type": "array", "items": ref("BankKey")},
                                      "certificates": {"type": "array", "items": ref("BankCertificate")}}},
        "EvidencePage": evidence_page_schema(),
        "BankList": {"type": "object", "additionalProperties": False, "required": ["items"],
                     "properties": {"items": {"type": "array", "items": ref("Bank")}}},
    }


def admin_op(operation_id: str, summary: str, description: str, ok: str, schema: str, *, status: str = "200",
             body: Json | None = None, conflict: str | None = None, path: tuple[str, str] | None = None,
             tag: str = "banks", location: bool = True) -> Json:
    """One admin operation answering JSON, with its usual error answers."""
    answer: Json = {"description": ok, "content": json_body(ref(schema))}
    if status == "201" and location:
        answer["headers"] = {"Location": header("the new resource's URL", required=True)}
    responses: Json = {status: answer, "401": resp("Unauthorized"), "500": resp("Internal"),
                       "503": resp("Unavailable")}
    if body is not None or operation_id.startswith(("disable", "enable", "revoke", "remove")):
        responses.update({"400": resp("BadInput"), "415": resp("MediaType")})
    if path is not None:
        responses["404"] = resp("NotFound")
    if conflict:
        responses["409"] = problem_response(conflict, example_problem(409, "conflict", "conflict", conflict))
    op: Json = {"tags": [tag], "operationId": operation_id, "summary": summary, "description": description,
                "responses": responses}
    if path is not None:
        op["parameters"] = [{"name": path[0], "in": "path", "required": True, "schema": {"type": "string"},
                             "description": path[1]}]
    if body is not None or operation_id.startswith(("disable", "enable", "revoke", "remove")):
        op["requestBody"] = {"required": body is not None and "required" in body,
                             "content": json_body(body or {"type": "object", "additionalProperties": False,
                                                           "maxProperties": 0})}
    return op


def admin_paths() -> Json:
    days: Json = {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_DAYS, "default": DEFAULT_DAYS,
                  "description": "days until the key expires (null: the default)"}
    never: Json = {"type": "boolean", "default": False, "description": "no expiry (instead of days)"}
    name = ("name", "the bank's name")
    key_id = ("key_id", "the key's id (the hex after `udun_`)")
    return {
        "/api/v1/evidence": {"get": evidence_search_operation(operator=True)},
        "/api/v1/banks": {
            "get": admin_op("listBanks", "Every bank", "By name.", "the banks", "BankList"),
            "post": admin_op("addBank", "Register a bank", "A bank is a relying party that calls the verify API; give "
                        "it a key next.", "registered", "Bank", status="201",
                        body={"type": "object", "additionalProperties": False, "required": ["name"],
                              "properties": {"name": {"type": "string"}, "display_name": {"type": "string"}}},
                        conflict="a bank named icbc exists already")},
        "/api/v1/banks/{name}": {"get": admin_op("showBank", "One bank with its keys", "Never a key itself: udun keeps "
                                            "only a slow hash.", "the bank", "BankDetail", path=name)},
        "/api/v1/banks/{name}/disable": {"post": admin_op(
            "disableBank", "Disable a bank", "Every key of the bank is refused from the next request on.",
            "disabled", "Bank", path=name, conflict="bank icbc is disabled already")},
        "/api/v1/banks/{name}/enable": {"post": admin_op(
            "enableBank", "Enable a bank again", "Its unrevoked, unexpired keys work again.", "enabled", "Bank",
            path=name, conflict="bank icbc is enabled already")},
        "/api/v1/banks/{name}/keys": {"post": admin_op(
            "addBankKey", "A new API key for a bank", "The key is in this answer only (Cache-Control: no-store).",
            "the new key", "NewBankKey", status="201", path=name,
            body={"type": "object", "additionalProperties": False, "properties": {
                "scopes": {"type": "array", "items": {"enum": list(SCOPES)}, "minItems": 1,
                           "default": list(DEFAULT_SCOPES)},
                "days": days, "never_expires": never}})},
        "/api/v1/banks/{name}/certificates": {"post": admin_op(
            "addBankCertificate", "Register a TLS client certificate of a bank",
            "On `udun serve` with UDUN_TLS_CLIENT_AUTH, a request presenting it (verified against "
            "UDUN_TLS_CLIENT_CA) is this bank's, with these scopes; beside another bank's API key it is refused.",
            "registered", "BankCertificate", status="201", path=name,
            conflict="this certificate is registered already (udun bank cert list)",
            body={"type": "object", "additionalProperties": False, "required": ["certificate_pem"],
                  "properties": {"certificate_pem": {"type": "string"},
                                 "scopes": {"type": "array", "items": {"enum": list(SCOPES)}, "minItems": 1,
                                            "default": list(DEFAULT_SCOPES)}}})},
        "/api/v1/bank-certificates/{sha256}/remove": {"post": admin_op(
            "removeBankCertificate", "Stop accepting a client certificate", "From the next request on, on every "
            "node.", "removed", "BankCertificate", path=("sha256", "the certificate's SHA-256, hex"),
            conflict="certificate ab12... was removed already")},
        "/api/v1/bank-keys/{key_id}/rotate": {"post": admin_op(
            "rotateBankKey", "Rotate a key", "A new key with the old one's scopes; the old key ends after "
            "`grace_hours` (or at its own expiry, if sooner).", "the new key", "NewBankKey", status="201",
            path=key_id, conflict="key 0f3a9c2e7b1d4a55 is revoked: issue a new key instead",
            body={"type": "object", "additionalProperties": False, "properties": {
                "grace_hours": {"type": "integer", "minimum": 0, "maximum": 720, "default": 24}, "days": days,
                "never_expires": never}})},
        "/api/v1/bank-keys/{key_id}/revoke": {"post": admin_op(
            "revokeBankKey", "Revoke a key", "Refused from the next request on, on every node.", "revoked",
            "BankKey", path=key_id, conflict="key 0f3a9c2e7b1d4a55 is revoked already")},
    }
