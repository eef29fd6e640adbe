"""Evidence search for operators (evidence:read): every bank's records (``bank``
names one), found by tx_id, signer serial and receipt time; the same as `udun evidence list`."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from ca.evidencequery import OPERATOR_PARAMETERS, from_parameters, summary_json
from ca.storage.evidence import EvidenceStore
from webapi.auth import operator_route

bp = Blueprint("admin_evidence", __name__, url_prefix="/api/v1")


@bp.get("/evidence")
@operator_route("evidence:read")
def search() -> Response:
    q = from_parameters(request.args.to_dict(), OPERATOR_PARAMETERS)
    page = EvidenceStore(current_app.extensions["udun-admin"]["ca"].store).search(q, bank_id=None)
    return jsonify({"items": [summary_json(s) for s in page.items], "next_cursor": page.next_cursor})
