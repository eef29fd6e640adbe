"""POST /api/v1/verify: a bank asks whether a signed payment holds (and keeps evidence).
POST /api/v1/challenges: a single-use challenge for the bank's next payment to carry.
Both need the bank's API key (scopes verify, challenges)."""
from flask import Blueprint, Response, current_app, g, jsonify, request

from webapi.auth import bank_route
from webapi.bodies import signed_payment
from webapi.observability import count_verification
from pkicore.clock import rfc3339

bp = Blueprint("verify", __name__, url_prefix="/api/v1")


@bp.post("/verify")
@bank_route("verify")
def verify() -> Response:
    cms, content = signed_payment(request)
    outcome = current_app.extensions["udun"].evidence().verify(g.bank, cms, content)
    report = outcome.report
    count_verification(report.status.value, report.sub_indication.value if report.sub_indication else None)
    return Response(outcome.json_text(), mimetype="application/json")


@bp.post("/challenges")
@bank_route("challenges")
def challenge() -> Response:
    value, expires = current_app.extensions["udun"].evidence().new_challenge(g.bank)
    resp = jsonify({"challenge": value, "expires_at": rfc3339(expires)})
    resp.status_code = 201
    resp.headers["Cache-Control"] = "no-store"
    return resp
