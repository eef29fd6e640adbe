"""The OpenAPI parts about dual control on the admin API (`udun serve-admin`): approval
requests, policies, and the guarded actions' 202 answers. Actions and their defaults come
from ca.approvals, so the document cannot drift from what is guarded."""
from __future__ import annotations

from ca.approvals import ACTIONS, MAX_APPROVALS, MAX_HOURS, STATES
from ca.operators import ROLES
from pkicore.crlbuild import REVOKE_REASONS
from webapi.openapi_banks import admin_op
from webapi.openapi_parts import Json, date_time, header, json_body, ref


def _object(required: list[str], properties: Json) -> Json:
    return {"type": "object", "additionalProperties": False, "required": required,  # type: ignore[dict-item]
            "properties": properties}


def schemas() -> Json:
    vote = _object(["operator", "vote", "comment", "at"], {
        "operator": {"type": "string"}, "vote": {"enum": ["approve", "reject"]},
        "comment": {"type": ["string", "null"]}, "at": date_time("cast")})
    approval = _object(["approval_id", "action", "params", "params_sha256", "requester", "required", "roles",
                        "approved", "state", "created_at", "expires_at", "decided_at", "result", "votes"], {
        "approval_id": {"type": "string"}, "action": {"enum": list(ACTIONS)},
        "params": {"type": "object", "description": "what will run, exactly as approved"},
        "params_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$",
                          "description": "SHA-256 of the RFC 8785 form of params: an approval names it"},
        "requester": {"type": "string"}, "required": {"type": "integer"},
        "roles": {"type": "array", "items": {"enum": list(ROLES)}}, "approved": {"type": "integer"},
        "state": {"enum": list(STATES)}, "created_at": date_time("asked for"), "expires_at": date_time("expires"),
        "decided_at": date_time("approved, rejected or expired", nullable=True),
        "result": {"type": ["object", "null"], "description": "what the execution returned, or its error"},
        "votes": {"type": "array", "items": vote}})
    policy = _object(["action", "description", "approvals", "roles", "expires_hours", "threshold", "profiles",
                      "updated_at", "updated_by"], {
        "action": {"enum": list(ACTIONS)}, "description": {"type": "string"},
        "approvals": {"type": "integer", "minimum": 0, "maximum": MAX_APPROVALS,
                      "description": "approvers needed besides the requester; 0: off"},
        "roles": {"type": "array", "items": {"enum": list(ROLES)}},
        "expires_hours": {"type": "integer", "minimum": 1, "maximum": MAX_HOURS},
        "threshold": {"type": ["integer", "null"], "description": "bulk-revoke: more than this many"},
        "profiles": {"type": "array", "items": {"type": "string"}, "description": "sensitive-issue: these profiles"},
        "updated_at": date_time("changed", nullable=True), "updated_by": {"type": ["string", "null"]}})
    return {
        "Approval": approval,
        "ApprovalList": _object(["items"], {"items": {"type": "array", "items": ref("Approval")}}),
        "ApprovalPending": _object(["approval"], {"approval": ref("Approval")}),
        "ApprovalPolicy": policy,
        "ApprovalPolicyList": _object(["items"], {"items": {"type": "array", "items": ref("ApprovalPolicy")}}),
        "ActionResult": _object(["result"], {"result": {"type": "object"}}),
    }


def pending_response() -> Json:
    return {"description": "the action waits for approval (dual control): GET the Location for its state",
            "content": json_body(ref("ApprovalPending")),
            "headers": {"Location": header("the request's URL, /api/v1/approvals/{approval_id}", required=True)}}


def guarded(paths: Json) -> Json:
    """The routes an approval policy can hold back answer 202 as well."""
    from webapi.openapi_customers import GUARDED

    for path, method in (("/api/v1/certificates", "post"), ("/api/v1/operators", "post"),
                         ("/api/v1/operators/{name}/role", "post"), ("/api/v1/operators/{name}/disable", "post"),
                         *GUARDED):
        item = paths[path]
        assert isinstance(item, dict)
        op = item[method]
        assert isinstance(op, dict) and isinstance(op["responses"], dict)
        op["responses"]["202"] = pending_response()
    return paths


def paths() -> Json:
    approval_id = ("approval_id", "the request's id")
    acted: Json = {"200": {"description": "done at once (the policy asks for no approval)",
                           "content": json_body(ref("ActionResult"))}, "202": pending_response()}

    def action_op(operation_id: str, summary: str, description: str, body: Json, conflict: str) -> Json:
        op = admin_op(operation_id, summary, description, "done at once", "ActionResult", tag="approvals",
                      body=body, conflict=conflict)
        op["responses"] = {**op["responses"], **acted}  # type: ignore[dict-item]
        return op

    return {
        "/api/v1/approvals": {"get": {**admin_op(
            "listApprovals", "Dual-control requests", "Newest first; pending ones past their time are expired first.",
            "the requests", "ApprovalList", tag="approvals"), "parameters": [
                {"name": "state", "in": "query", "required": False, "schema": {"enum": list(STATES)}},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}}]}},
        "/api/v1/approvals/{approval_id}": {"get": admin_op(
            "showApproval", "One request", "With its votes and, once executed, its result.", "the request",
            "Approval", path=approval_id, tag="approvals")},
        "/api/v1/approvals/{approval_id}/approve": {"post": admin_op(
            "approveRequest", "Approve a request", "Not your own, not with the shared admin key, with a role the "
            "request's policy names, and naming the params_sha256 you were shown. The approval that completes the "
            "request executes it (once, however many arrive at once); the answer shows the result.", "the request",
            "Approval", path=approval_id, tag="approvals", conflict="approval 9f3a... is rejected: it takes no more "
            "votes", body=_object(["params_sha256"], {"params_sha256": {"type": "string"},
                                                      "comment": {"type": "string", "maxLength": 500}}))},
        "/api/v1/approvals/{approval_id}/reject": {"post": admin_op(
            "rejectRequest", "Reject a request", "One rejection ends it (the requester may withdraw theirs).",
            "the request", "Approval", path=approval_id, tag="approvals",
            conflict="approval 9f3a... is executed: it takes no more votes",
            body=_object([], {"comment": {"type": "string", "maxLength": 500}}))},
        "/api/v1/approval-policies": {"get": admin_op(
            "listApprovalPolicies", "The approval policies", "Every guarded action with its policy (udun's "
            "default where none was set).", "the policies", "ApprovalPolicyList", tag="approvals")},
        "/api/v1/approval-policies/{action}": {"post": action_op(
            "setApprovalPolicy", "Change an approval policy", "Under the policy-change policy itself.",
            _object([], {"approvals": {"type": "integer", "minimum": 0, "maximum": MAX_APPROVALS},
                         "roles": {"type": "array", "items": {"enum": list(ROLES)}},
                         "expires_hours": {"type": "integer", "minimum": 1, "maximum": MAX_HOURS},
                         "threshold": {"type": "integer", "minimum": 1},
                         "profiles": {"type": "array", "items": {"type": "string"}}}),
            "policy-change needs 1 approver(s) with the role admin other than you; there are 0") | {
            "parameters": [{"name": "action", "in": "path", "required": True, "schema": {"enum": list(ACTIONS)}}]}},
        "/api/v1/authorities/issuing/revoke": {"post": action_op(
            "revokeIssuingCa", "Revoke the issuing CA", "Under the ca-revoke policy. The root's next CRL (published "
            "at once) lists it; no certificate under it verifies any more. Irreversible.",
            _object([], {"reason": {"enum": list(REVOKE_REASONS), "default": "cACompromise"},
                         "invalidity_date": {"type": "string", "format": "date-time"}}),
            "ca-revoke needs 1 approver(s) with the role admin other than you; there are 0")},
        "/api/v1/certificates/revoke": {"post": action_op(
            "revokeCertificates", "Revoke several certificates", "More than the bulk-revoke policy's threshold "
            "waits for approval; an unknown serial is a 404 before anything changes.",
            _object(["serials"], {"serials": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                                              "maxItems": 10000},
                                  "reason": {"enum": list(REVOKE_REASONS), "default": "unspecified"}}),
            "certificate 2f0c... is revoked: cannot revoke it")},
    }
