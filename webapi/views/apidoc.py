"""GET /openapi.json: the OpenAPI 3.1 document of the API this process serves."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("apidoc", __name__)              # the bank-facing API's document (udun serve)
admin_bp = Blueprint("admin_apidoc", __name__)  # the admin API's document (udun serve-admin)
