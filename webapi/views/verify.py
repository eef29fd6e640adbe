"""POST /api/v1/verify: a bank asks whether a signed payment holds."""
from flask import Blueprint, Response, current_app, jsonify, request

from webapi.bodies import signed_payment

bp = Blueprint("verify", __name__, url_prefix="/api/v1")


@bp.post("/verify")
def verify() -> Response:
    cms, content = signed_payment(request)
    report = current_app.extensions["udun"].verifier.verify(cms, content)
    return jsonify(report.to_json())
