"""The OpenAPI parts about customers, account binding and transaction limits on the admin
API (ca.customers, ca.limits). The routes that let a certificate pay from accounts answer
202 under the account-binding policy, a limit raise under limit-raise
(webapi.openapi_approvals.guarded)."""
from __future__ import annotations

from ca.customers import MAX_ACCOUNTS
from webapi.openapi_banks import admin_op
from webapi.openapi_parts import Json, date_time, ref

ACCOUNT: Json = {"type": "string", "pattern": "^[0-9A-Z]{4,34}$", "description": "an account number as payments "
                                                                                  "carry it"}
CUSTOMER_ID: Json = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                     "description": "the bank's customer number"}
GUARDED = (("/api/v1/customers", "post"), ("/api/v1/customers/{customer_id}/accounts", "post"),
           ("/api/v1/customers/{customer_id}/certificates", "post"), ("/api/v1/limits", "post"))
AMOUNT: Json = {"type": ["string", "null"], "pattern": "^(0|[1-9][0-9]{0,14})(\\.[0-9]{1,2})?$",
                "description": "a decimal amount, e.g. \"50000.00\"; null: not set at this level"}


def _object(required: list[str], properties: Json) -> Json:
    return {"type": "object", "additionalProperties": False, "required": required,  # type: ignore[dict-item]
            "properties": properties}


def schemas() -> Json:
    return {
        "Customer": _object(["customer", "name", "accounts", "certificates", "created_by", "created_at"], {
            "customer": CUSTOMER_ID, "name": {"type": "string"},
            "accounts": {"type": "array", "items": ACCOUNT, "description": "the payer accounts its certificates "
                                                                           "pay from"},
            "certificates": {"type": "array", "items": {"type": "string"},
                             "description": "serials of this CA's certificates bound to it; sha256:<hex> for "
                                            "another trusted CA's"},
            "created_by": {"type": "string"}, "created_at": date_time("added")}),
        "CustomerList": _object(["items"], {"items": {"type": "array", "items": ref("Customer")}}),
        "Limit": _object(["scope", "subject", "currency", "per_payment", "per_day", "set_by", "set_at"], {
            "scope": {"enum": ["profile", "customer"]}, "subject": {"type": "string"},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}, "per_payment": AMOUNT, "per_day": AMOUNT,
            "set_by": {"type": "string"}, "set_at": date_time("set (null: udun's default)", nullable=True)}),
        "LimitList": _object(["items"], {"items": {"type": "array", "items": ref("Limit")}}),
        "LimitResult": _object(["result"], {"result": ref("Limit")}),
        "LimitRemoved": _object(["removed"], {"removed": {"type": "object"}}),
        "OtpCredential": _object(["credential", "customer", "kind", "period", "digits", "state", "failures",
                                  "created_by", "created_at", "locked_at"], {
            "credential": {"type": "string"}, "customer": CUSTOMER_ID, "kind": {"enum": ["baoling", "mobile"]},
            "period": {"type": "integer", "description": "seconds per code"}, "digits": {"type": "integer"},
            "state": {"enum": ["active", "locked", "revoked"]}, "failures": {"type": "integer"},
            "created_by": {"type": "string"}, "created_at": date_time("enrolled"),
            "locked_at": date_time("locked", nullable=True)}),
        "OtpList": _object(["items"], {"items": {"type": "array", "items": ref("OtpCredential")}}),
        "Usage": _object(["customer", "items"], {"customer": CUSTOMER_ID, "items": {"type": "array", "items": _object(
            ["day", "currency", "used", "payments"], {"day": {"type": "string", "format": "date"},
                                                      "currency": {"type": "string"}, "used": AMOUNT,
                                                      "payments": {"type": "integer"}})}}),
    }


def _with_uri(op: Json) -> Json:
    """The enrollment's answer: the credential and, once, its URI."""
    responses = op["responses"]
    assert isinstance(responses, dict)
    answer = responses["201"]
    assert isinstance(answer, dict)
    answer["content"] = {"application/json": {"schema": {"allOf": [ref("OtpCredential")], "type": "object",
                                                          "properties": {"uri": {"type": "string",
                                                                                 "format": "uri"}}}}}
    return op


def paths() -> Json:
    cid = ("customer_id", "the customer's id")
    return {
        "/api/v1/customers": {
            "get": {**admin_op("listCustomers", "Customers", "By id; `account` finds the one customer who has an "
                               "account.", "the customers", "CustomerList", tag="customers"),
                    "parameters": [
                        {"name": "account", "in": "query", "required": False, "schema": ACCOUNT},
                        {"name": "after", "in": "query", "required": False, "schema": CUSTOMER_ID,
                         "description": "the last id of the page before"},
                        {"name": "limit", "in": "query", "required": False,
                         "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}}]},
            "post": admin_op("addCustomer", "Add a customer", "With accounts the request waits for a second "
                             "operator (account-binding policy): 202.", "added", "Customer", status="201",
                             tag="customers", conflict="account 6222... is bound to a customer already",
                             body=_object(["customer", "name"], {
                                 "customer": CUSTOMER_ID, "name": {"type": "string", "maxLength": 200},
                                 "accounts": {"type": "array", "items": ACCOUNT, "maxItems": MAX_ACCOUNTS}}))},
        "/api/v1/customers/{customer_id}": {"get": admin_op(
            "showCustomer", "One customer", "Its accounts and certificates.", "the customer", "Customer", path=cid,
            tag="customers")},
        "/api/v1/customers/{customer_id}/accounts": {"post": admin_op(
            "addCustomerAccount", "Bind an account to a customer", "Waits for a second operator (account-binding "
            "policy): 202. An account belongs to one customer.", "bound", "ActionResult", path=cid, tag="customers",
            conflict="account 6222... is bound to a customer already", body=_object(["account"], {"account": ACCOUNT}))},
        "/api/v1/customers/{customer_id}/accounts/{account}": {"delete": {**admin_op(
            "removeCustomerAccount", "Take an account away", "At once: it only restricts.", "removed", "Customer",
            path=cid, tag="customers"), "parameters": [
                {"name": "customer_id", "in": "path", "required": True, "schema": CUSTOMER_ID},
                {"name": "account", "in": "path", "required": True, "schema": ACCOUNT}]}},
        "/api/v1/customers/{customer_id}/certificates": {"post": admin_op(
            "bindCertificate", "Bind a certificate to a customer", "This CA's by serial, another trusted CA's by the "
            "certificate itself; one bound to no customer yet. Waits for a second operator (account-binding "
            "policy): 202.", "bound", "ActionResult", path=cid, tag="customers",
            conflict="the certificate is bound to customer C0001 already",
            body=_object([], {"serial": {"type": "string"}, "certificate_pem": {"type": "string"}}))},
        "/api/v1/limits": {
            "get": {**admin_op("listLimits", "Transaction limits", "Profiles' (udun's defaults while none is set) "
                               "and customers' own, per currency.", "the limits", "LimitList", tag="customers"),
                    "parameters": [
                        {"name": "scope", "in": "query", "required": False, "schema": {"enum": ["profile", "customer"]}},
                        {"name": "subject", "in": "query", "required": False, "schema": {"type": "string"}}]},
            "post": admin_op("setLimit", "Set a profile's or a customer's limits", "Replaces that scope's limits in the "
                             "currency. A raise (a profile's made higher, a customer's above the profile's) waits for a "
                             "second operator (limit-raise policy): 202. A profile's needs limits:profile.", "set",
                             "LimitResult", tag="customers", body=_object(["subject"], {
                                 "scope": {"enum": ["profile", "customer"], "default": "customer"},
                                 "subject": {"type": "string"}, "currency": {"type": "string", "default": "CNY"},
                                 "per_payment": AMOUNT, "per_day": AMOUNT}))},
        "/api/v1/limits/customer/{customer_id}/{currency}": {"delete": {**admin_op(
            "removeLimit", "Remove a customer's own limits", "The profile's apply again.", "removed", "LimitRemoved",
            path=cid, tag="customers"), "parameters": [
                {"name": "customer_id", "in": "path", "required": True, "schema": CUSTOMER_ID},
                {"name": "currency", "in": "path", "required": True, "schema": {"type": "string"}}]}},
        "/api/v1/otp": {
            "get": {**admin_op("listOtp", "OTP credentials", "Newest first; never a secret.", "the credentials",
                               "OtpList", tag="customers"),
                    "parameters": [{"name": "customer", "in": "query", "required": False, "schema": CUSTOMER_ID}]},
            "post": _with_uri(admin_op("enrollOtp", "Enroll a customer's OTP (宝令)", "RFC 6238 TOTP; the customer's "
                                       "credential before is revoked. The otpauth:// URI is in this answer only "
                                       "(Cache-Control: no-store).", "enrolled", "OtpCredential", status="201",
                                       tag="customers", body=_object(["customer"], {
                                           "customer": CUSTOMER_ID, "kind": {"enum": ["baoling", "mobile"],
                                                                             "default": "baoling"}})))},
        "/api/v1/otp/{credential_id}/unlock": {"post": admin_op(
            "unlockOtp", "Unlock an OTP credential", "After five failures in a row it is locked.", "unlocked",
            "OtpCredential", path=("credential_id", "the credential"), tag="customers",
            conflict="OTP credential OTP... is not locked")},
        "/api/v1/otp/{credential_id}/revoke": {"post": admin_op(
            "revokeOtp", "Revoke an OTP credential", "It is never accepted again.", "revoked", "OtpCredential",
            path=("credential_id", "the credential"), tag="customers")},
        "/api/v1/limits/usage": {"get": {**admin_op(
            "limitUsage", "A customer's daily usage", "Per day (UDUN_LIMIT_TIMEZONE) and currency, newest first.",
            "the usage", "Usage", tag="customers"), "parameters": [
                {"name": "customer", "in": "query", "required": True, "schema": CUSTOMER_ID}]}},
    }
