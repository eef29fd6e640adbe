"""The OpenAPI parts about customers and account binding on the admin API (ca.customers).
The routes that let a certificate pay from accounts answer 202 under the account-binding
policy (webapi.openapi_approvals.guarded)."""
from __future__ import annotations

from ca.customers import MAX_ACCOUNTS
from webapi.openapi_banks import admin_op
from webapi.openapi_parts import Json, date_time, ref

ACCOUNT: Json = {"type": "string", "pattern": "^[0-9A-Z]{4,34}$", "description": "an account number as payments "
                                                                                  "carry it"}
CUSTOMER_ID: Json = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                     "description": "the bank's customer number"}
GUARDED = (("/api/v1/customers", "post"), ("/api/v1/customers/{customer_id}/accounts", "post"),
           ("/api/v1/customers/{customer_id}/certificates", "post"))


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
    }


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
    }
