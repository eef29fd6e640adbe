"""GET /api/v1/certificates/<serial>: a bank looks up one certificate the CA issued, with its
current status (scope certificates:read). By serial only, no search: a bank learns nothing
of the CA's other customers it does not already hold a serial of (from a signed payment).
Issuance intents that never became a certificate are 404, as unknown serials are."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from ca.certquery import current_status
from pkicore.clock import rfc3339
from pkicore.errors import ErrorKind, PkiError
from webapi.auth import bank_route
from webapi.presenters import certificate_pem

bp = Blueprint("certificates", __name__, url_prefix="/api/v1")


@bp.get("/certificates/<serial>")
@bank_route("certificates:read")
def show(serial: str) -> Response:
    ca = current_app.extensions["udun"]._ca()
    rec = ca.get(serial)
    if rec.state != "issued" or rec.der is None:
        raise PkiError(ErrorKind.NOT_FOUND, f"no certificate with serial {serial}")
    now = ca.clock()
    return jsonify({
        "serial": rec.serial, "status": current_status(rec, now), "profile": rec.profile, "subject": rec.subject,
        "not_before": rfc3339(rec.not_before), "not_after": rfc3339(rec.not_after),
        "revoked_at": rfc3339(rec.revoked_at) if rec.revoked_at else None,
        "revocation_reason": rec.revocation_reason,
        "invalidity_date": rfc3339(rec.invalidity_date) if rec.invalidity_date else None,
        "certificate_pem": certificate_pem(rec.der),
    })
