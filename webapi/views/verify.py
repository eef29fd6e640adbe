"""POST /api/v1/verify: a bank asks whether a signed payment holds (and keeps evidence).
POST /api/v1/challenges: a single-use challenge for the next payment to carry."""
from flask import Blueprint, Response, current_app, jsonify, request

from webapi.bodies import signed_payment
from webapi.observability import count_verification
from pkicore.clock import rfc3339

bp = Blueprint("verify", __name__, url_prefix="/api/v1")


@bp.post("/verify")
def verify() -> Response:
    cms, content = signed_payment(request)
    outcome = current_app.extensions["udun"].evidence().verify(cms, content)
    report = outcome.report
    count_verification(report.status.value, report.sub_indication.value if report.sub_indication else None)
    return Response(outcome.json_text(), mimetype="application/json")


@bp.post("/challenges")
def challenge() -> Response:
    value, expires = current_app.extensions["udun"].evidence().new_challenge()
    resp = jsonify({"challenge": value, "expires_at": rfc3339(expires)})
    resp.status_code = 201
    resp.headers["Cache-Control"] = "no-store"
    return resp
