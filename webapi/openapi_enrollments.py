"""The OpenAPI parts about a customer's certificate on the admin API (`udun serve-admin`):
operators' counter enrollments, and the public routes a customer's `udun enroll`, `udun
token renew` and `udun token rekey` call."""
from __future__ import annotations

from ca.enrollments import DEFAULT_HOURS, MAX_ACCOUNTS, MAX_ATTEMPTS, MAX_HOURS
from ca.profiles import REQUESTABLE
from webapi.openapi_banks import admin_op
from webapi.openapi_parts import Json, date_time, example_problem, problem_response, ref, resp

CODE_PATTERN = "^[0-9A-Z]{4}(-[0-9A-Z]{4}){5}$"


def _object(required: list[str], properties: Json) -> Json:
    return {"type": "object", "additionalProperties": False, "required": required,  # type: ignore[dict-item]
            "properties": properties}


def schemas() -> Json:
    enrollment = _object(["enrollment_id", "subject", "profile", "accounts", "state", "created_by", "created_at",
                          "expires_at", "attempts", "used_at", "serial"], {
        "enrollment_id": {"type": "string"}, "subject": {"type": "string", "description": "RFC 4514"},
        "profile": {"enum": list(REQUESTABLE)}, "accounts": {"type": "array", "items": {"type": "string"}},
        "state": {"enum": ["open", "awaiting-approval", "used", "locked", "expired"]}, "created_by": {"type": "string"},
        "created_at": date_time("made"), "expires_at": date_time("the code expires"),
        "attempts": {"type": "integer", "description": f"wrong codes so far; {MAX_ATTEMPTS} lock it"},
        "used_at": date_time("used", nullable=True), "serial": {"type": ["string", "null"]},
        "customer": {"type": ["string", "null"], "description": "the customer its certificate is bound to"}})
    return {
        "Enrollment": enrollment,
        "NewEnrollment": {**enrollment, "required": [*enrollment["required"], "code"],  # type: ignore[misc]
                          "properties": {**enrollment["properties"],  # type: ignore[dict-item]
                                         "code": {"type": "string", "pattern": CODE_PATTERN,
                                                  "description": "the activation code: in this answer only"},
                                         "approval": {"type": "object", "description": "the dual-control request "
                                                      "that must be approved before the code works (an enrollment "
                                                      "for a customer, account-binding policy)"}}},
        "EnrollmentList": _object(["items"], {"items": {"type": "array", "items": ref("Enrollment")}}),
        "EnrollmentOpened": _object(["enrollment_id", "subject", "profile", "expires_at"], {
            "enrollment_id": {"type": "string"}, "subject": {"type": "string"}, "profile": {"type": "string"},
            "expires_at": date_time("the code expires")}),
        "Renewed": _object(["serial", "replaces", "certificate_pem", "chain_pem"], {
            "serial": {"type": "string"}, "replaces": {"type": "string", "description": "the current certificate"},
            "certificate_pem": {"type": "string"}, "chain_pem": {"type": "string"}}),
        "Enrolled": _object(["enrollment_id", "serial", "certificate_pem", "chain_pem"], {
            "enrollment_id": {"type": "string"}, "serial": {"type": "string"}, "certificate_pem": {"type": "string"},
            "chain_pem": {"type": "string", "description": "the issuing CA and the root"}}),
    }


def paths() -> Json:
    eid = ("enrollment_id", "the enrollment's id (the code's first eight characters)")
    code: Json = {"type": "string", "description": "the activation code, with or without hyphens, any case"}
    lookup = admin_op("openEnrollment", "What an activation code enrolls", "Public: the code is the credential. A "
                      f"wrong code counts; after {MAX_ATTEMPTS} the enrollment is locked.", "the enrollment",
                      "EnrollmentOpened", tag="enrollment", body=_object(["code"], {"code": code}),
                      conflict="this activation code was used already")
    enroll = admin_op("enroll", "Enroll with an activation code", "Public: the code is the credential. The CSR "
                      "(made on the customer's token) must carry the enrollment's subject (else 422, the code "
                      "stays usable); the certificate is issued once.", "issued", "Enrolled", status="201",
                      tag="enrollment", body=_object(["code", "csr"], {"code": code, "csr": {"type": "string"}}),
                      conflict="this activation code was used already")
    renew = admin_op("renewCertificate", "Renew a certificate (same key)", "Public: the CSR, for the same key and "
                     "subject, is signed by the current certificate's key. Allowed in the last "
                     "UDUN_RENEW_BEFORE_DAYS (30) of its validity; the current one stays valid to its end.",
                     "renewed", "Renewed", status="201", tag="enrollment",
                     body=_object(["serial", "csr"], {"serial": {"type": "string"}, "csr": {"type": "string"}}),
                     conflict="certificate 2f0c... can be renewed from 2027-11-02 10:00Z")
    rekey = admin_op("rekeyCertificate", "Re-key: a certificate for a new key", "Public: the current key signs "
                     "pkicore.adminsig.rekey_message (the current serial and the new CSR's SHA-256). The current "
                     "certificate is revoked as superseded once the new one is issued.", "issued", "Renewed",
                     status="201", tag="enrollment",
                     body=_object(["serial", "csr", "signature"], {
                         "serial": {"type": "string"}, "csr": {"type": "string"},
                         "signature": {"type": "string", "contentEncoding": "base64"},
                         "scheme": {"enum": ["ecdsa", "pkcs1", "pss"], "default": "ecdsa"}}),
                     conflict="certificate 2f0c... is on hold: release it first")
    for op in (lookup, enroll, renew, rekey):
        op["security"] = []
        responses = op["responses"]
        assert isinstance(responses, dict)
        responses.update({"401": resp("Unauthorized"), "422": problem_response(
            "the CSR's subject is not the enrollment's, or it breaks the profile (`policy-rejected`)",
            example_problem(422, "policy-rejected", "policy", "the CSR's subject 'CN=李四' is not this "
                                                              "enrollment's 'CN=张三'"))})
    return {
        "/api/v1/enrollments": {
            "get": {**admin_op("listEnrollments", "Enrollments", "Newest first.", "the enrollments", "EnrollmentList",
                               tag="enrollment"),
                    "parameters": [{"name": "limit", "in": "query", "required": False,
                                    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}}]},
            "post": admin_op("createEnrollment", "Make a counter enrollment (柜台激活码)", "The code is in this answer "
                             "only (Cache-Control: no-store); only its slow hash is kept.", "made", "NewEnrollment",
                             status="201", tag="enrollment", body=_object(["subject"], {
                                 "subject": {"type": "string", "description": "RFC 4514, e.g. CN=张三,O=Example Bank,C=CN"},
                                 "profile": {"enum": list(REQUESTABLE), "default": "client"},
                                 "customer": {"type": "string", "description": "an existing customer to bind the "
                                                                               "certificate to"},
                                 "accounts": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_ACCOUNTS,
                                              "description": "instead of customer: a new customer ENR-<id> with "
                                                             "these accounts"},
                                 "hours": {"type": "integer", "minimum": 1, "maximum": MAX_HOURS,
                                           "default": DEFAULT_HOURS}}))},
        "/api/v1/enrollments/{enrollment_id}": {"get": admin_op(
            "showEnrollment", "One enrollment", "Never its code.", "the enrollment", "Enrollment", path=eid,
            tag="enrollment")},
        "/api/v1/enrollments/{enrollment_id}/cancel": {"post": admin_op(
            "cancelEnrollment", "Cancel an enrollment", "Its code cannot be used any more.", "cancelled",
            "Enrollment", path=eid, tag="enrollment", conflict="enrollment ABCD1234 is used or locked already")},
        "/api/v1/enroll/lookup": {"post": lookup},
        "/api/v1/enroll": {"post": enroll},
        "/api/v1/renew": {"post": renew},
        "/api/v1/rekey": {"post": rekey},
    }
