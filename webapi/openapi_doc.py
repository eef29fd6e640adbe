"""The OpenAPI 3.1 documents of udun's two services, as Python data.

`bank_document()` describes `udun serve` (webapi: verify, challenges, evidence, OCSP, TSA,
CRL and CA downloads); `admin_document()` describes `udun serve-admin` (adminapi: issuance
for operators by role). webapi.views.apidoc serves them at /openapi.json, and
tests/webapi/test_openapi.py validates them and compares their paths with every route the
apps and the WSGI fast paths answer, so a route added without its documentation fails.

Enumerations come from the code (ETSI indications, error kinds, requestable profiles)
rather than being copied here, so the document cannot drift from what the API says.
Schemas are JSON Schema 2020-12, OpenAPI 3.1's dialect.
"""
from __future__ import annotations

import importlib.metadata

from ca.certquery import MAX_LIMIT, STATUSES
from ca.profiles import DELEGATED, REQUESTABLE
from pkicore.crlbuild import REVOKE_REASONS
from pkicore.errors import ErrorKind
from pkicore.report import Status, Sub

from webapi import openapi_banks as banks_doc
from webapi import openapi_approvals as approvals_doc
from webapi import openapi_customers as customers_doc
from webapi import openapi_enrollments as enroll_doc
from webapi import openapi_operators as ops_doc
from webapi.openapi_banks import bank_key_scheme, bank_responses, secured
from webapi.openapi_parts import Json, JsonValue
from webapi.openapi_parts import binary as _binary
from webapi.openapi_parts import example_problem as _example_problem
from webapi.openapi_parts import hdr as _hdr
from webapi.openapi_parts import header as _header
from webapi.openapi_parts import hex_string as _hex
from webapi.openapi_parts import json_body as _json
from webapi.openapi_parts import or_null as _or_null
from webapi.openapi_parts import problem_response as _problem_response
from webapi.openapi_parts import ref as _ref
from webapi.openapi_parts import resp as _resp
from webapi.openapi_parts import date_time as _time

OPENAPI = "3.1.0"
PROMETHEUS_TYPE = "text/plain; version=0.0.4"   # the Prometheus text exposition format

# Codes webapi.problems gives Werkzeug's HTTP errors (its _HTTP_CODES, and "http-error" for
# any other status), beside the PkiError kinds: the `code` of every problem udun answers.
_HTTP_CODES = ("unauthorized", "forbidden", "method-not-allowed", "too-large", "unsupported-media-type",
               "http-error")


def package_version() -> str:
    """The installed distribution's version (the document describes that code)."""
    try:
        return importlib.metadata.version("udun")
    except importlib.metadata.PackageNotFoundError:   # a checkout run without `pip install -e`
        return "0.0.0+unknown"


# --- shared components -----------------------------------------------------------------


def _problem_schema() -> Json:
    codes: list[JsonValue] = [k.value for k in ErrorKind]
    codes += [c for c in _HTTP_CODES if c not in codes]
    return {
        "type": "object",
        "description": "RFC 9457 problem details: every error either service answers, never a stack trace. "
                       "`type` and `code` are stable; `title` and `detail` are for people.",
        "required": ["type", "code", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri", "pattern": "^urn:udun:problem:[a-z-]+$",
                     "description": "urn:udun:problem:{code}"},
            "code": {"type": "string", "enum": codes, "description": "the stable error code"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "the HTTP status"},
            "detail": {"type": "string"},
            "field": {"type": "string", "description": "the request field at fault, when there is one "
                                                       "(e.g. `cms`, `payee.account`)"},
        },
    }


def _readiness_schema() -> Json:
    return {
        "type": "object",
        "description": "Whether this process should get traffic: the database answers, its schema is at "
                       "the newest revision (servers never migrate it: `udun db upgrade`) and the keys it signs "
                       "with can be used. A failed check has `code` (stable) and `detail`.",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "examples": ["ok", "unavailable"]},
            "checks": {"type": "object", "description": "one entry per check, by name",
                       "additionalProperties": {"type": "object", "required": ["status"],
                                                "properties": {"status": {"enum": ["ok", "failed"]},
                                                               "code": {"type": "string"},
                                                               "detail": {"type": "string"}}}},
        },
    }


def _common_responses() -> Json:
    return {
        "BadInput": _problem_response(
            "malformed request: code `bad-input` (or `bad-transaction`, `bad-csr`, `unsupported`), with the "
            "`field` at fault when there is one",
            _example_problem(400, "bad-input", "bad input", "cms is not valid base64", field="cms")),
        "Unauthorized": {**_problem_response(
            "no valid credential (`Authorization: Bearer ...`, RFC 6750; the scheme is case-insensitive): an "
            "operator's API token or session, or the admin API key; or a change in a token session without its "
            "valid signature",
            _example_problem(401, "unauthorized", "unauthorized", "the API token is not valid")),
            "headers": {"WWW-Authenticate": _hdr("WwwAuthenticate")}},
        "NotFound": _problem_response(
            "no such resource", _example_problem(404, "not-found", "not found", "no such evidence record")),
        "MediaType": _problem_response(
            "the body's Content-Type is none this endpoint reads (RFC 9110 §15.5.16)",
            _example_problem(415, "unsupported-media-type", "media type", "send the body as application/json")),
        "TooLarge": _problem_response(
            "the body is larger than this service accepts",
            _example_problem(413, "too-large", "Request Entity Too Large", "The data value transmitted exceeds "
                                                                           "the capacity limit.")),
        "Unavailable": _problem_response(
            "a service udun needs failed or is not set up (`unavailable`, `not-initialised`, `token-error`, "
            "`pin-incorrect`): retry later",
            _example_problem(503, "unavailable", "unavailable", "the evidence record could not be stored; no "
                                                                "evidence was kept, submit the payment again")),
        "TooManyRequests": {**_problem_response(
            "over a rate limit (UDUN_RATE_LIMIT_PER_ADDRESS, UDUN_RATE_LIMIT_PER_KEY, per worker) or the open "
            "challenge quota (UDUN_CHALLENGE_QUOTA); retry after Retry-After seconds (RFC 6585 §4)",
            _example_problem(429, "too-many-requests", "too many requests",
                             "more than 1000/second from this address; retry after 1 s")),
            "headers": {"Retry-After": _hdr("RetryAfter")}},
        "Internal": _problem_response(
            "a bug; the error was logged, the answer says no more",
            _example_problem(500, "internal", "internal error", "the server failed; the error was logged")),
    }


def _common_headers() -> Json:
    return {
        "CacheControl": _header("caching policy (RFC 9111)", required=True),
        "ETag": _header("entity tag, for If-None-Match"),
        "Expires": _header("HTTP date after which the answer is stale"),
        "LastModified": _header("HTTP date: the thisUpdate of the CRL or OCSP answer"),
        "RetryAfter": _header("seconds until the token is looked for again (RFC 9110 §10.2.3)"),
        "Location": _header("the new certificate's URL, GET /api/v1/certificates/{serial} (RFC 9110 §10.2.2)",
                            required=True),
        "WwwAuthenticate": _header('the scheme wanted: Bearer realm="udun", with error="invalid_token" when a '
                                   "key was sent and did not match (RFC 9110 §11.6.1, RFC 6750 §3)", required=True),
    }


def _openapi_operation(service: str, public_note: str = "") -> Json:
    return {
        "tags": ["operations"],
        "operationId": "openapiDocument",
        "summary": "This OpenAPI document",
        "description": f"The OpenAPI 3.1 description of {service}, built once per process; "
                       f"cacheable (ETag, If-None-Match).{public_note}",
        "parameters": [{"$ref": "#/components/parameters/IfNoneMatch"}],
        "responses": {
            "200": {"description": "the document", "headers": {"Cache-Control": _hdr("CacheControl"),
                                                                "ETag": _hdr("ETag")},
                    "content": _json({"type": "object", "required": ["openapi", "info", "paths"]})},
            "304": {"description": "the document has not changed (If-None-Match matched)"},
        },
    }


def _readyz_operation(public_note: str = "", extra: Json | None = None) -> Json:
    return {
        "tags": ["operations"],
        "operationId": "readiness",
        "summary": "Readiness probe",
        "description": "200 when this process can serve: the database answers, its schema is at the "
                       "newest revision and the keys it signs with can be used on their token; 503 otherwise, "
                       f"naming each failed check with its code.{public_note}",
        "responses": {
            "200": {"description": "ready", "content": _json(_ref("Readiness"))},
            "503": {"description": "not ready: the failed check is named", "content": _json(_ref("Readiness"))},
            **(extra or {}),
        },
    }


def _admin_readyz_operation() -> Json:
    return _readyz_operation(" Needs an operator (service:read); checks the CA's issuing key too (`ca_key`).",
                             {"401": _resp("Unauthorized")})


def _metrics_operation(description: str, secured: bool) -> Json:
    responses: Json = {"200": {"description": "the metrics in the Prometheus text exposition format 0.0.4",
                               "content": {PROMETHEUS_TYPE: {"schema": {"type": "string"}}}}}
    if secured:
        responses["401"] = _resp("Unauthorized")
    return {"tags": ["operations"], "operationId": "metrics", "summary": "Prometheus metrics",
            "description": description, "responses": responses}


# --- the bank-facing API (udun serve) --------------------------------------------------


def _transaction_schema() -> Json:
    party_account: Json = {"type": "string", "pattern": "^[0-9A-Z]{4,34}$",
                           "description": "4 to 34 digits or capital letters"}
    name: Json = {"type": "string", "minLength": 1, "maxLength": 100}
    return {
        "type": "object",
        "description": "A version-1 payment as signed (its RFC 8785 canonical bytes are the signed content). "
                       "Unknown fields, floats, duplicate keys and invisible or bidi control characters are "
                       "refused.",
        "additionalProperties": False,
        "required": ["version", "tx_id", "payer", "payee", "amount", "currency", "created_at"],
        "properties": {
            "version": {"const": 1},
            "tx_id": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}$",
                      "description": "unique per signer: a second payment with it is REPLAYED"},
            "payer": {"type": "object", "additionalProperties": False, "required": ["account"],
                      "properties": {"account": party_account, "name": name}},
            "payee": {"type": "object", "additionalProperties": False, "required": ["account", "name"],
                      "properties": {"account": party_account, "name": name, "bank": name}},
            "amount": {"type": "string", "pattern": r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?$",
                       "description": "decimal string, greater than zero, at most 2 places (none for "
                                      "currencies without a minor unit, e.g. JPY)"},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$", "description": "an active ISO 4217 code"},
            "created_at": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$",
                           "description": "RFC 3339, UTC"},
            "memo": {"type": "string", "minLength": 1, "maxLength": 140},
            "challenge": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$",
                          "description": "a single-use value from POST /api/v1/challenges"},
            "otp": {"type": "string", "pattern": "^[0-9]{6,8}$",
                    "description": "the customer's one-time password (宝令), signed with the payment: needed above "
                                   "UDUN_OTP_ABOVE"},
        },
    }


def _status_entry_schema() -> Json:
    text_or_null: Json = {"type": ["string", "null"]}
    return {
        "type": "object",
        "description": "The status now of one certificate below the trust anchor, and where it came from.",
        "additionalProperties": False,
        "required": ["certificate", "serial", "position", "source", "status", "this_update", "next_update",
                     "age_seconds", "revoked_at", "reason", "detail"],
        "properties": {
            "certificate": {"type": "string", "description": "its subject (RFC 4514)"},
            "serial": _hex("its serial number, hex"),
            "position": {"type": "string", "pattern": "^(end-entity|intermediate [1-9][0-9]*)$",
                         "description": "`end-entity` (the signer) or `intermediate N`, N = 1 for the "
                                        "issuing CA counting up towards the root"},
            "source": {"enum": ["OCSP", "CRL", None]},
            "status": {"enum": ["good", "revoked", "on_hold", "unusable", "unchecked"],
                       "description": "`unusable`: no valid, fresh status; `unchecked`: a certificate above "
                                      "it failed"},
            "this_update": _time("thisUpdate of the OCSP answer or CRL", nullable=True),
            "next_update": _time("nextUpdate of the OCSP answer or CRL", nullable=True),
            "age_seconds": {"type": ["integer", "null"], "description": "seconds since thisUpdate"},
            "revoked_at": _time("revocation or hold time", nullable=True),
            "reason": {**text_or_null, "description": "RFC 5280 §5.3.1 reason name, e.g. keyCompromise"},
            "detail": {"type": "string"},
        },
    }


def _report_schema() -> Json:
    subs: list[JsonValue] = [s.value for s in Sub]
    return {
        "type": "object",
        "description": "The verification report (ETSI EN 319 102-1 indications, plus udun's own "
                       "sub-indications for payments whose signature holds but which must not be executed). "
                       "Only TOTAL_PASSED carries `evidence_id` and `time_stamp`: the evidence was stored "
                       "before the answer.",
        "additionalProperties": False,
        "required": ["status", "sub_indication", "message", "signer", "signing_time", "transaction",
                     "revocation", "statuses", "checks", "evidence_id"],
        "properties": {
            "status": {"enum": [s.value for s in Status]},
            "sub_indication": {"enum": [*subs, None], "description": "null for TOTAL_PASSED"},
            "message": {"type": "string", "description": "the first failed check, or `the signature is valid`"},
            "signer": _or_null(_ref("Signer")),
            "signing_time": _time("the signingTime the signer claims (not a proof)", nullable=True),
            "transaction": _or_null({**_ref("Transaction"),
                                     "description": "the payment, when the signed content is one"}),
            "revocation": _or_null({**_ref("CertificateStatus"), "description": "the signer's status"}),
            "statuses": {"type": "array", "items": _ref("CertificateStatus"),
                         "description": "every certificate below the trust anchor, signer first"},
            "checks": {"type": "array", "items": _ref("Check")},
            "evidence_id": {"type": ["string", "null"], "pattern": "^ev_[0-9a-f]{32}$",
                            "description": "the stored evidence record (GET /api/v1/evidence/{evidence_id})"},
            "first_evidence_id": {"type": "string", "pattern": "^ev_[0-9a-f]{32}$",
                                  "description": "REPLAYED only: the record of the first submission"},
            "time_stamp": _ref("TimeStamp"),
        },
    }


def _report_example() -> Json:
    return {
        "status": "TOTAL_PASSED", "sub_indication": None, "message": "the signature is valid",
        "signer": {"subject": "CN=张三,O=Example Bank,C=CN", "issuer": "CN=udun Issuing CA,O=udun,C=CN",
                   "serial": "2f0c5a9e1b7d44c3a08e6f1d2c3b4a59", "not_before": "2026-01-01T00:00:00Z",
                   "not_after": "2027-12-31T00:00:00Z", "certificate_sha256": "ab" * 32},
        "signing_time": "2026-11-22T10:00:05Z",
        "transaction": {"version": 1, "tx_id": "TX-20261122-0001",
                        "payer": {"account": "6222020200112233445", "name": "张三"},
                        "payee": {"account": "6228480012345678901", "name": "李四", "bank": "中国农业银行"},
                        "amount": "1234.50", "currency": "CNY", "created_at": "2026-11-22T10:00:00Z"},
        "revocation": None, "statuses": [],
        "checks": [{"check": "message digest", "result": "passed"},
                   {"check": "signature", "result": "passed"}],
        "evidence_id": "ev_019a8c2f4b10" + "0" * 20,
        "time_stamp": {"gen_time": "2026-11-22T10:00:06.123Z", "serial": "1a2b",
                       "policy": "2.25.186103448224315384127420651869011474787"},
    }


def _bank_schemas() -> Json:
    return {
        "Problem": _problem_schema(),
        "VerifyRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["cms"],
            "properties": {
                "cms": {"type": "string", "minLength": 1, "contentEncoding": "base64",
                        "contentMediaType": "application/pkcs7-mime",
                        "description": "the CMS SignedData (DER), base64; line breaks are ignored"},
                "content": {"type": ["string", "null"], "minLength": 1, "contentEncoding": "base64",
                            "description": "for a detached signature: the signed bytes (the payment's RFC 8785 "
                                           "canonical form), base64"},
            },
        },
        "Transaction": _transaction_schema(),
        "Signer": {
            "type": "object",
            "description": "The signer's certificate as the CMS names it.",
            "additionalProperties": False,
            "required": ["subject", "issuer", "serial", "not_before", "not_after", "certificate_sha256"],
            "properties": {
                "subject": {"type": "string", "description": "RFC 4514"},
                "issuer": {"type": "string", "description": "RFC 4514"},
                "serial": _hex("hex"),
                "not_before": _time("notBefore"),
                "not_after": _time("notAfter"),
                "certificate_sha256": _hex("SHA-256 of the certificate's DER", 64),
            },
        },
        "CertificateStatus": _status_entry_schema(),
        "Check": {
            "type": "object",
            "additionalProperties": False,
            "required": ["check", "result"],
            "properties": {
                "check": {"type": "string", "examples": ["message digest", "signature", "signing certificate",
                                                         "certificate chain", "key usage", "transaction"]},
                "result": {"enum": ["passed", "failed"]},
                "detail": {"type": "string"},
                "sub_indication": {"enum": [s.value for s in Sub]},
            },
        },
        "TimeStamp": {
            "type": "object",
            "description": "The RFC 3161 time-stamp of the signature value (the stored CMS is CAdES-T).",
            "additionalProperties": False,
            "required": ["gen_time", "serial", "policy"],
            "properties": {
                "gen_time": _time("genTime, milliseconds"),
                "serial": _hex("the token's serial number, hex"),
                "policy": {"type": "string", "pattern": r"^[0-2](\.[0-9]+)+$", "description": "the TSA policy OID"},
            },
        },
        "VerificationReport": _report_schema(),
        "Challenge": {
            "type": "object",
            "additionalProperties": False,
            "required": ["challenge", "expires_at"],
            "properties": {
                "challenge": {"type": "string", "pattern": "^[A-Za-z0-9_-]{32}$",
                              "description": "put it in the payment's `challenge` field before signing"},
                "expires_at": _time("after this (UDUN_CHALLENGE_SECONDS) the payment is CHALLENGE_EXPIRED"),
            },
        },
        "Health": {"type": "object", "additionalProperties": False, "required": ["status"],
                   "properties": {"status": {"const": "ok"}}},
        "BankCertificate": banks_doc.bank_certificate_schema(),
        "EvidencePage": banks_doc.evidence_page_schema(),
        "Readiness": _readiness_schema(),
    }


def _verify_operation() -> Json:
    der = _binary("CMS SignedData, DER, with the payment attached")
    return {
        "tags": ["verification"],
        "operationId": "verifyPayment",
        "summary": "Verify a signed payment",
        "description": (
            "Checks digest, signature, signingCertificateV2, cmsAlgorithmProtection, the RFC 5280 path to the "
            "trust anchors, nonRepudiation, the payment format and the status now of the signer and of every "
            "CA above it. When it holds (TOTAL_PASSED), the payment's rules follow (replay, bank challenge), the "
            "signature is time-stamped and the evidence stored in one transaction before the answer, which then "
            "carries `evidence_id` and `time_stamp`. A payment that fails is a 200 report, not an error. "
            "The body is the DER CMS (any of the CMS media types; attached content only) or JSON with base64 "
            "`cms` and, for a detached signature, `content`. Any other media type is a 415 "
            "`unsupported-media-type`. At most 1 MiB."),
        "requestBody": {
            "required": True,
            "content": {
                "application/pkcs7-mime": {"schema": der},
                "application/pkcs7-signature": {"schema": der},
                "application/cms": {"schema": der},
                "application/octet-stream": {"schema": der},
                "application/json": {"schema": _ref("VerifyRequest"), "examples": {
                    "attached": {"summary": "attached signature", "value": {"cms": "MIAGCSqGSIb3DQEHAqCAMIACAQE="}},
                    "detached": {"summary": "detached signature with its content",
                                 "value": {"cms": "MIAGCSqGSIb3DQEHAqCAMIACAQE=", "content": "eyJhbW91bnQiOiIxIn0="}},
                }},
            },
        },
        "responses": {
            "200": {"description": "the verification report, whatever its indication",
                    "content": _json(_ref("VerificationReport"), {"passed": {"value": _report_example()}})},
            "400": _resp("BadInput"),
            "413": _resp("TooLarge"),
            "415": _resp("MediaType"),
            "500": _resp("Internal"),
            "503": _resp("Unavailable"),
        },
    }


def _bank_paths() -> Json:
    der_status = "the current CA certificates and CRLs are read from the database"
    crl_name: Json = {"name": "name", "in": "path", "required": True,
                      "schema": {"enum": ["issuing-ca", "root-ca"]},
                      "description": "`issuing-ca` (client certificates' CRL) or `root-ca` (the issuing CA's)"}
    return {
        "/api/v1/verify": {"post": secured(_verify_operation(), "verify")},
        "/api/v1/challenges": {"post": secured({
            "tags": ["verification"],
            "operationId": "newChallenge",
            "summary": "A single-use bank challenge",
            "description": "A value the next payment carries in its `challenge` field (required in every "
                           "payment when UDUN_REQUIRE_CHALLENGE is set); usable once, until `expires_at`, "
                           "and only in a payment this bank verifies. No request body.",
            "responses": {
                "201": {"description": "a new challenge", "headers": {"Cache-Control": _hdr("CacheControl")},
                        "content": _json(_ref("Challenge"))},
                "500": _resp("Internal"),
                "503": _resp("Unavailable"),
            },
        }, "challenges")},
        "/api/v1/evidence/{evidence_id}": {"get": secured({
            "tags": ["evidence"],
            "operationId": "getEvidenceBundle",
            "summary": "The evidence bundle of a verified payment",
            "description": "A zip: the payment, the CMS as received and time-stamped (CAdES-T), the time-stamp "
                           "token, the certificates and revocation data the verdict used, the report, a "
                           "time-stamped manifest and a README with the OpenSSL commands that check it offline "
                           "(`udun evidence verify` does the same). Only the bank's own records: another "
                           "bank's is a 404, as a missing one.",
            "parameters": [{"name": "evidence_id", "in": "path", "required": True,
                            "schema": {"type": "string", "examples": ["ev_019a8c2f4b10" + "0" * 20]},
                            "description": "the `evidence_id` of a TOTAL_PASSED report"}],
            "responses": {
                "200": {"description": "the bundle",
                        "headers": {"Cache-Control": _hdr("CacheControl"),
                                    "Content-Disposition": _header("attachment; filename=\"{evidence_id}.zip\"",
                                                                   required=True)},
                        "content": {"application/zip": {"schema": _binary("the zip bundle")}}},
                "404": _resp("NotFound"),
                "500": _resp("Internal"),
                "503": _resp("Unavailable"),
            },
        }, "evidence:read")},
        "/api/v1/evidence": {"get": secured(banks_doc.evidence_search_operation(operator=False), "evidence:read")},
        "/api/v1/certificates/{serial}": {"get": secured({
            "tags": ["status"],
            "operationId": "getCertificate",
            "summary": "One certificate and its status",
            "description": "A certificate the CA issued, by serial (no search: a bank learns nothing of other "
                           "customers), with its current status. Intents that never became a certificate are "
                           "404, as unknown serials.",
            "parameters": [{"name": "serial", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "hex; case and a `0x` prefix do not matter"}],
            "responses": {
                "200": {"description": "the certificate", "content": _json(_ref("BankCertificate"))},
                "404": _resp("NotFound"),
                "500": _resp("Internal"),
                "503": _resp("Unavailable"),
            },
        }, "certificates:read")},
        "/crl/{name}.crl": {"get": {
            "tags": ["status"],
            "operationId": "getCrl",
            "summary": "The current CRL",
            "description": "The CRL distribution point written into every certificate (RFC 5280 §4.2.1.13): "
                           f"the newest full CRL, DER, cacheable until its nextUpdate; {der_status}. "
                           "Conditional requests answer 304.",
            "parameters": [crl_name, {"$ref": "#/components/parameters/IfNoneMatch"},
                           {"name": "If-Modified-Since", "in": "header", "required": False,
                            "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "the CRL",
                        "headers": {"Cache-Control": _hdr("CacheControl"), "ETag": _hdr("ETag"),
                                    "Expires": _hdr("Expires"), "Last-Modified": _hdr("LastModified")},
                        "content": {"application/pkix-crl": {"schema": _binary("DER CertificateList (RFC 5280)")}}},
                "304": {"description": "not modified"},
                "404": _resp("NotFound"),
                "500": _resp("Internal"),
                "503": _resp("Unavailable"),
            },
        }},
        "/ca/{name}.crt": {"get": {
            "tags": ["status"],
            "operationId": "getCaCertificate",
            "summary": "A CA certificate",
            "description": "The AIA caIssuers URL (RFC 5280 §4.2.2.1) of the certificates below it, DER; "
                           f"{der_status}.",
            "parameters": [{**crl_name, "description": "`issuing-ca` or `root-ca`"}],
            "responses": {
                "200": {"description": "the certificate", "headers": {"Cache-Control": _hdr("CacheControl")},
                        "content": {"application/pkix-cert": {"schema": _binary("DER certificate (RFC 5280)")}}},
                "404": _resp("NotFound"),
                "500": _resp("Internal"),
                "503": _resp("Unavailable"),
            },
        }},
        "/ocsp": {"post": {
            "tags": ["status"],
            "operationId": "ocspPost",
            "summary": "OCSP (RFC 6960)",
            "description": "One certificate per request (RFC 5019 §2.1.1: more is malformedRequest); the nonce "
                           "is echoed (1 to 32 octets, RFC 8954). Answered in front of Flask: every request, "
                           "good or not, gets a 200 with an OCSPResponse; refusals are its responseStatus "
                           "(malformedRequest, unauthorized, internalError, tryLater with Retry-After while the "
                           "responder's token cannot be reached), never an HTTP error. A body above "
                           "64 KiB (or sent without Content-Length) is answered as an empty request.",
            "requestBody": {"required": True, "content": {
                "application/ocsp-request": {"schema": _binary("DER OCSPRequest")}}},
            "responses": {"200": {
                "description": "an OCSPResponse signed by the delegated responder key", "headers": {
                    "Cache-Control": _hdr("CacheControl"), "Retry-After": _hdr("RetryAfter")},
                "content": {"application/ocsp-response": {"schema": _binary("DER OCSPResponse")}}}},
        }},
        "/ocsp/{request}": {"get": {
            "tags": ["status"],
            "operationId": "ocspGet",
            "summary": "OCSP over GET (RFC 6960 Appendix A.1, RFC 5019 §5)",
            "description": "As POST /ocsp, the request in the path. A good or revoked answer to a request "
                           "without a nonce is cacheable until its nextUpdate (RFC 5019 §6: Cache-Control "
                           "max-age, Expires, Last-Modified, ETag); others are no-store.",
            "parameters": [{"name": "request", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "the DER OCSPRequest, base64, then URL-encoded (`/` as %2F, `+` "
                                           "as %2B; a raw `/` works too: the rest of the path is the request)"}],
            "responses": {"200": {
                "description": "an OCSPResponse",
                "headers": {"Cache-Control": _hdr("CacheControl"), "ETag": _hdr("ETag"),
                            "Expires": _hdr("Expires"), "Last-Modified": _hdr("LastModified")},
                "content": {"application/ocsp-response": {"schema": _binary("DER OCSPResponse")}}}},
        }},
        "/tsa": {"post": {
            "tags": ["time-stamping"],
            "operationId": "timeStamp",
            "summary": "RFC 3161 time-stamp",
            "description": "A TimeStampReq (RFC 3161 §2.4.1) in, a TimeStampResp out, signed by the delegated "
                           "TSA key under UDUN_TSA_POLICY. Answered in front of Flask: the content type is not "
                           "enforced, and every request gets a 200; refusals are PKIStatus rejection with a "
                           "failInfo (badDataFormat, badRequest above 16 KiB or without Content-Length, "
                           "systemFailure), never an HTTP error, except 503 + Retry-After while its token "
                           "cannot be reached.",
            "requestBody": {"required": True, "content": {
                "application/timestamp-query": {"schema": _binary("DER TimeStampReq")}}},
            "responses": {
                "200": {"description": "a TimeStampResp", "headers": {"Cache-Control": _hdr("CacheControl")},
                        "content": {"application/timestamp-reply": {"schema": _binary("DER TimeStampResp")}}},
                "503": {"description": "the TSA's token cannot be reached now: still a TimeStampResp (rejection, "
                                       "systemFailure), with Retry-After",
                        "headers": {"Retry-After": _hdr("RetryAfter")},
                        "content": {"application/timestamp-reply": {"schema": _binary("DER TimeStampResp")}}}},
        }},
        "/healthz": {"get": {
            "tags": ["operations"],
            "operationId": "health",
            "summary": "Liveness probe",
            "description": "200 while the process answers; it asks neither the database nor a token (that is "
                           "/readyz), so a slow database never gets a live worker restarted.",
            "responses": {
                "200": {"description": "alive", "headers": {"Cache-Control": _hdr("CacheControl")},
                        "content": _json(_ref("Health"))},
            },
        }},
        "/readyz": {"get": _readyz_operation()},
        "/metrics": {"get": _metrics_operation(
            "This service's metrics for Prometheus to scrape (under gunicorn, over all its workers). "
            "No key needed.", secured=False)},
        "/openapi.json": {"get": _openapi_operation("`udun serve`")},
    }


def _rate_limited(paths: Json) -> Json:
    """Every route of `udun serve` can answer 429 (webapi.ratelimit sits in front of them all)."""
    for operations in paths.values():
        assert isinstance(operations, dict)
        for operation in operations.values():
            assert isinstance(operation, dict) and isinstance(operation["responses"], dict)
            operation["responses"]["429"] = _resp("TooManyRequests")
    return paths


def bank_document() -> Json:
    """The OpenAPI document of the bank-facing API (`udun serve`)."""
    return {
        "openapi": OPENAPI,
        "info": {
            "title": "udun bank-facing API",
            "version": package_version(),
            "summary": "Verification of signed payments with lasting evidence; OCSP, TSA, CRLs, CA certificates.",
            "description": "What `udun serve` answers. It holds only the delegated OCSP and TSA keys; issuance "
                           "is the admin API (`udun serve-admin`). Every error is `application/problem+json` "
                           "(RFC 9457) with a stable `code`; a malformed body is a 400, never a 500.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": "verification", "description": "signed payments"},
            {"name": "evidence", "description": "evidence records of verified payments"},
            {"name": "status", "description": "certificate status: CRLs, OCSP, CA certificates"},
            {"name": "time-stamping", "description": "RFC 3161"},
            {"name": "operations", "description": "health, readiness, metrics, this document"},
        ],
        "paths": _rate_limited(_bank_paths()),
        "components": {
            "schemas": _bank_schemas(),
            "responses": {**_common_responses(), **bank_responses()},
            "headers": _common_headers(),
            "parameters": {"IfNoneMatch": {"name": "If-None-Match", "in": "header", "required": False,
                                           "schema": {"type": "string"}}},
            "securitySchemes": {"bankKey": bank_key_scheme()},
        },
    }


# --- the admin API (udun serve-admin) --------------------------------------------------


def _admin_schemas() -> Json:
    return {
        "Problem": _problem_schema(),
        "Certificate": _certificate_schema(with_history=False),
        "CertificateDetail": _certificate_schema(with_history=True),
        "CertificatePage": {
            "type": "object", "additionalProperties": False, "required": ["items", "next_cursor"],
            "properties": {"items": {"type": "array", "items": _ref("Certificate")},
                           "next_cursor": {"type": ["string", "null"],
                                           "description": "pass as `cursor` for the next page; null: the last"}},
        },
        "AdminHealth": {"type": "object", "additionalProperties": False, "required": ["status"],
                        "properties": {"status": {"const": "ok"}}},
        "Readiness": _readiness_schema(),
        **banks_doc.admin_schemas(),
        **ops_doc.schemas(),
        **approvals_doc.schemas(),
        **enroll_doc.schemas(),
        **customers_doc.schemas(),
    }


def _certificate_schema(with_history: bool) -> Json:
    """A certificate on the admin API (webapi.presenters.certificate_json); GET of one adds its history."""
    properties: Json = {
        "serial": _hex("the serial number, hex (126 random bits)"),
        "status": {"enum": list(STATUSES),
                   "description": "now: good, on-hold, revoked (as the CRL says), expired (notAfter "
                                  "passed, never held or revoked); pending or failed for an issuance intent"},
        "state": {"enum": ["pending", "issued", "failed"],
                  "description": "the issuance (two-phase: intent recorded, then signed); not the "
                                 "revocation status"},
        "profile": {"enum": [*REQUESTABLE, *DELEGATED]},
        "subject": {"type": "string", "description": "RFC 4514"},
        "not_before": _time("notBefore"),
        "not_after": _time("notAfter"),
        "requested_at": _time("when the intent was recorded"),
        "requester": {"type": "string", "description": "who asked (api, cli, serve-admin, ...)"},
        "issued_at": _time("when it was signed; null unless issued", nullable=True),
        "revoked_at": _time("revocation or hold time; null when good", nullable=True),
        "revocation_reason": {"type": ["string", "null"], "description": "RFC 5280 §5.3.1 name"},
        "invalidity_date": _time("RFC 5280 §5.3.2 (keyCompromise): since when", nullable=True),
        "certificate_pem": {"type": ["string", "null"], "pattern": "^-----BEGIN CERTIFICATE-----",
                            "description": "the certificate, PEM; null unless issued"},
    }
    required: list[JsonValue] = ["serial", "status", "state", "profile", "subject", "not_before", "not_after", "requested_at",
                "requester", "issued_at", "revoked_at", "revocation_reason", "invalidity_date",
                "certificate_pem"]
    if with_history:
        properties["history"] = {"type": "array", "description": "status changes, oldest first", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["action", "reason", "invalidity_date", "actor", "at"],
            "properties": {"action": {"enum": ["revoke", "hold", "release", "abandon"]},
                           "reason": {"type": ["string", "null"]},
                           "invalidity_date": _time("RFC 5280 §5.3.2", nullable=True),
                           "actor": {"type": "string"}, "at": _time("when")}}}
        required.append("history")
    return {"type": "object", "additionalProperties": False, "required": required, "properties": properties}


def _status_operation(operation_id: str, summary: str, description: str, body: Json | None) -> Json:
    op: Json = {
        "tags": ["certificates"],
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "parameters": [{"name": "serial", "in": "path", "required": True, "schema": {"type": "string"},
                        "description": "hex; case and a `0x` prefix do not matter"}],
        "responses": {
            "200": {"description": "the certificate as it is now, with its status history",
                    "content": _json(_ref("CertificateDetail"))},
            "400": _resp("BadInput"),
            "401": _resp("Unauthorized"),
            "404": _resp("NotFound"),
            "409": _problem_response("the certificate's status does not allow this change (`conflict`)",
                                     _example_problem(409, "conflict", "conflict",
                                                      "certificate 2f0c5a9e is revoked; it cannot be held")),
            "415": _resp("MediaType"),
            "500": _resp("Internal"),
            "503": _resp("Unavailable"),
        },
    }
    empty: Json = {"type": "object", "additionalProperties": False, "maxProperties": 0}
    schema = body if body is not None else empty
    op["requestBody"] = {"required": False, "content": _json(schema)}
    return op


def _search_operation() -> Json:
    def param(name: str, description: str, schema: Json | None = None) -> Json:
        return {"name": name, "in": "query", "required": False, "schema": schema or {"type": "string"},
                "description": description}

    when: Json = {"type": "string", "examples": ["2026-12-31", "2026-12-31T08:00:00Z"]}
    return {
        "tags": ["certificates"],
        "operationId": "searchCertificates",
        "summary": "Find certificates",
        "description": "Filters combine (AND); newest first; a page of `limit`, then `next_cursor`. The same "
                       "query as `udun ca list`. An unknown parameter or a bad value is a 400 `bad-input` "
                       "naming the `field`. Times are dates (midnight UTC) or RFC 3339.",
        "parameters": [
            param("subject", "the subject DN contains this text (any case)"),
            param("serial", "the serial starts with these hex digits"),
            param("status", "the current status", {"enum": list(STATUSES)}),
            param("profile", "the profile", {"enum": [*REQUESTABLE, *DELEGATED]}),
            param("issued_after", "issued at or after", when),
            param("issued_before", "issued before", when),
            param("expiring_after", "notAfter at or after", when),
            param("expiring_before", "notAfter before (renewals due)", when),
            param("limit", "page size", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100}),
            param("cursor", "`next_cursor` of the page before"),
        ],
        "responses": {
            "200": {"description": "one page", "content": _json(_ref("CertificatePage"))},
            "400": _resp("BadInput"),
            "401": _resp("Unauthorized"),
            "500": _resp("Internal"),
            "503": _resp("Unavailable"),
        },
    }


def _admin_paths() -> Json:
    csr = _binary("the PKCS#10 CSR, PEM or DER (the media type is not checked)")
    return {
        "/api/v1/certificates": {"get": _search_operation(), "post": {
            "tags": ["certificates"],
            "operationId": "issueCertificate",
            "summary": "Issue a certificate from a CSR",
            "description": "Checks the CSR's proof of possession and subject, applies the profile and issues "
                           "(two-phase: the intent is recorded before the CA key signs). The body is the CSR, "
                           "at most 64 KiB; its media type is not checked.",
            "parameters": [{"name": "profile", "in": "query", "required": False,
                            "schema": {"enum": list(REQUESTABLE), "default": "client"},
                            "description": "another value is a 400 `bad-input`"},
                           {"name": "customer", "in": "query", "required": False, "schema": {"type": "string"},
                            "description": "bind the certificate to this customer: it pays from their accounts "
                                           "(waits for approval under the account-binding policy: 202)"}],
            "requestBody": {"required": True, "content": {
                "application/pkcs10": {"schema": csr}, "application/x-pem-file": {"schema": csr},
                "application/octet-stream": {"schema": csr}}},
            "responses": {
                "201": {"description": "issued", "content": _json(_ref("Certificate")),
                        "headers": {"Location": _hdr("Location")}},
                "400": _resp("BadInput"),
                "401": _resp("Unauthorized"),
                "413": _resp("TooLarge"),
                "422": _problem_response("the CSR breaks the profile or the CA's policy (`policy-rejected`)",
                                         _example_problem(422, "policy-rejected", "policy",
                                                          "EC curve secp384r1 is not allowed; use P-256")),
                "500": _resp("Internal"),
                "503": _resp("Unavailable"),
            },
        }},
        "/api/v1/certificates/{serial}": {"get": {
            "tags": ["certificates"],
            "operationId": "getCertificate",
            "summary": "One certificate",
            "description": "Any certificate the CA recorded, including its delegated OCSP and TSA "
                           "certificates and failed intents.",
            "parameters": [{"name": "serial", "in": "path", "required": True,
                            "schema": {"type": "string", "examples": ["2f0c5a9e1b7d44c3a08e6f1d2c3b4a59"]},
                            "description": "hex; case and a `0x` prefix do not matter"}],
            "responses": {
                "200": {"description": "the certificate with its status history",
                        "content": _json(_ref("CertificateDetail"))},
                "401": _resp("Unauthorized"),
                "404": _resp("NotFound"),
                "500": _resp("Internal"),
                "503": _resp("Unavailable"),
            },
        }},
        "/api/v1/certificates/{serial}/hold": {"post": _status_operation(
            "holdCertificate", "Hold (挂失)",
            "Suspends a good certificate: listed on the CRL with reason certificateHold (RFC 5280 §5.3.1) "
            "until released. A new CRL is published at once; OCSP answers it on the next request. No body, "
            "or an empty JSON object.", None)},
        "/api/v1/certificates/{serial}/release": {"post": _status_operation(
            "releaseCertificate", "Release a hold (解挂)",
            "A held certificate is good again and leaves the next CRL (published at once). No body, or an "
            "empty JSON object.", None)},
        "/api/v1/certificates/{serial}/revoke": {"post": _status_operation(
            "revokeCertificate", "Revoke for good",
            "From good or on hold; a revoked certificate cannot be held, released or revoked again (409). "
            "`reason` (default unspecified) and `invalidity_date` (RFC 5280 §5.3.2: when the key was "
            "compromised, not in the future) are optional. keyCompromise also blocks the key for ever.",
            {"type": "object", "additionalProperties": False, "properties": {
                "reason": {"enum": list(REVOKE_REASONS)},
                "invalidity_date": {"type": "string", "format": "date-time",
                                    "examples": ["2026-11-22T08:00:00Z"]}}})},
        "/api/v1/crls": {"post": {
            "tags": ["certificates"],
            "operationId": "publishCrl",
            "summary": "Publish a CRL now",
            "description": "The issuing CA's full CRL (or the root's with `?ca=root`), its number one higher.",
            "parameters": [{"name": "ca", "in": "query", "required": False,
                            "schema": {"enum": ["issuing", "root"], "default": "issuing"}}],
            "responses": {
                "201": {"description": "published", "content": _json({
                    "type": "object", "additionalProperties": False,
                    "required": ["ca", "number", "this_update", "next_update", "entries"],
                    "properties": {"ca": {"enum": ["issuing", "root"]}, "number": {"type": "integer"},
                                   "this_update": _time("thisUpdate"), "next_update": _time("nextUpdate"),
                                   "entries": {"type": "integer"}}})},
                "400": _resp("BadInput"),
                "401": _resp("Unauthorized"),
                "415": _resp("MediaType"),
                "500": _resp("Internal"),
                "503": _resp("Unavailable"),
            },
        }},
        "/healthz": {"get": {
            "tags": ["operations"],
            "operationId": "health",
            "summary": "Liveness probe (for operators)",
            "description": "200 while the process answers (no database, no token). Needs an operator "
                           "(service:read).",
            "responses": {
                "200": {"description": "alive", "content": _json(_ref("AdminHealth"))},
                "401": _resp("Unauthorized"),
            },
        }},
        "/readyz": {"get": _admin_readyz_operation()},
        "/metrics": {"get": _metrics_operation(
            "The admin service's metrics for Prometheus to scrape. Needs an operator (service:read), e.g. a "
            "monitoring account with the auditor role.", secured=True)},
        "/openapi.json": {"get": {**_openapi_operation(
            "`udun serve-admin`", " Public, without the key: it describes the API and reveals no data."),
            "security": []}},
    }


def admin_document() -> Json:
    """The OpenAPI document of the admin API (`udun serve-admin`)."""
    return {
        "openapi": OPENAPI,
        "info": {
            "title": "udun admin API",
            "version": package_version(),
            "summary": "Certificate issuance where the issuing CA key is.",
            "description": "What `udun serve-admin` answers: bind it to an operators' network, never the "
                           "banks'. Every route needs an operator's credential whose role has the route's "
                           "permission (or the admin API key) unless it says otherwise. Errors are `application/problem+json` (RFC 9457) with a stable `code`.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": "certificates", "description": "issuance and records"},
            {"name": "banks", "description": "the banks that call the verify API, and their API keys"},
            {"name": "evidence", "description": "evidence records of verified payments, every bank's"},
            {"name": "operators", "description": "operators, their roles, credentials and token login"},
            {"name": "audit", "description": "the hash-chained audit log"},
            {"name": "approvals", "description": "dual control (双人认证): requests, votes, policies"},
            {"name": "enrollment", "description": "counter enrollment with activation codes (柜台激活码)"},
            {"name": "customers", "description": "customers and the accounts their certificates pay from"},
            {"name": "operations", "description": "health, readiness, metrics, this document"},
        ],
        "security": [{"operatorToken": []}, {"adminKey": []}],
        "paths": ops_doc.with_forbidden(approvals_doc.guarded({
            **_admin_paths(), **banks_doc.admin_paths(), **ops_doc.paths(), **approvals_doc.paths(),
            **enroll_doc.paths(), **customers_doc.paths()})),
        "components": {
            "schemas": _admin_schemas(),
            "responses": {**_common_responses(), "Forbidden": ops_doc.forbidden()},
            "headers": _common_headers(),
            "parameters": {"IfNoneMatch": {"name": "If-None-Match", "in": "header", "required": False,
                                           "schema": {"type": "string"}}},
            "securitySchemes": ops_doc.security_schemes(),
        },
    }
