"""The bank's own evidence (its API key with scope evidence:read; another bank's record is
404, as a missing one): GET /api/v1/evidence/<id>, the bundle (zip) of a verified payment;
GET /api/v1/evidence, its records found by tx_id, signer serial and receipt time."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, g, jsonify, request

from ca.evidencequery import BANK_PARAMETERS, from_parameters, summary_json
from ca.storage.evidence import EvidenceStore
from webapi.auth import bank_route

bp = Blueprint("evidence", __name__, url_prefix="/api/v1")


@bp.get("/evidence")
@bank_route("evidence:read")
def search() -> Response:
    q = from_parameters(request.args.to_dict(), BANK_PARAMETERS)      # a bank's: no `bank` parameter
    page = EvidenceStore(current_app.extensions["udun"]._ca().store).search(q, bank_id=g.bank.bank_id)
    return jsonify({"items": [summary_json(s) for s in page.items], "next_cursor": page.next_cursor})


@bp.get("/evidence/<evidence_id>")
@bank_route("evidence:read")
def bundle(evidence_id: str) -> Response:
    data = current_app.extensions["udun"].bundle(evidence_id, g.bank.bank_id)
    return Response(data, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{evidence_id}.zip"', "Cache-Control": "no-store"})
