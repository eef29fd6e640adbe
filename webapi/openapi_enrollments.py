"""The OpenAPI parts about counter enrollment on the admin API (`udun serve-admin`):
operators' enrollments and the two public routes a customer's `udun enroll` calls."""
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
        "state": {"enum": ["open", "used", "locked", "expired"]}, "created_by": {"type": "string"},
        "created_at": date_time("made"), "expires_at": date_time("the code expires"),
        "attempts": {"type": "integer", "description": f"wrong codes so far; {MAX_ATTEMPTS} lock it"},
        "used_at": date_time("used", nullable=True), "serial": {"type": ["string", "null"]}})
    return {
        "Enrollment": enrollment,
        "NewEnrollment": {**enrollment, "required": [*enrollment["required"], "code"],  # type: ignore[misc]
                          "properties": {**enrollment["properties"],  # type: ignore[dict-item]
                                         "code": {"type": "string", "pattern": CODE_PATTERN,
                                                  "description": "the activation code: in this answer only"}}},
        "EnrollmentList": _object(["items"], {"items": {"type": "array", "items": ref("Enrollment")}}),
        "EnrollmentOpened": _object(["enrollment_id", "subject", "profile", "expires_at"], {
            "enrollment_id": {"type": "string"}, "subject": {"type": "string"}, "profile": {"type": "string"},
            "expires_at": date_time("the code expires")}),
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
    for op in (lookup, enroll):
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
                                 "accounts": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_ACCOUNTS},
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
    }
