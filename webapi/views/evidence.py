"""GET /api/v1/evidence/<id>: the evidence bundle (zip) of a verified payment (admin key)."""
from __future__ import annotations

from flask import Blueprint, Response, current_app

from webapi.auth import require_key

bp = Blueprint("evidence", __name__, url_prefix="/api/v1")


@bp.get("/evidence/<evidence_id>")
def bundle(evidence_id: str) -> Response:
    denied = require_key(current_app.extensions["udun"].admin_api_key)
    if denied is not None:
        return denied
    data = current_app.extensions["udun"].bundle(evidence_id)
    return Response(data, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{evidence_id}.zip"', "Cache-Control": "no-store"})
