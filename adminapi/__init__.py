"""The admin service (`udun serve-admin`): issuance where the issuing CA key is, its own
process and port, never reachable from the bank-facing API (webapi)."""
from adminapi.app import create_admin_app

__all__ = ["create_admin_app"]
