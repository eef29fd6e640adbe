"""GET /api/v1/evidence/<id>: the evidence bundle (zip) of a payment the bank verified
(its API key with scope evidence:read; another bank's record is 404, as a missing one)."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, g

from webapi.auth import bank_route

bp = Blueprint("evidence", __name__, url_prefix="/api/v1")


@bp.get("/evidence/<evidence_id>")
@bank_route("evidence:read")
def bundle(evidence_id: str) -> Response:
    data = current_app.extensions["udun"].bundle(evidence_id, g.bank.bank_id)
    return Response(data, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{evidence_id}.zip"', "Cache-Control": "no-store"})
