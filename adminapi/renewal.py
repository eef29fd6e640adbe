"""Renewal and re-key through the admin API (ca.rekey): two public routes, the current
certificate's key is the credential (the renewal CSR is signed by it; a re-key carries its
signature over the new CSR). On the admin service because issuing needs the CA key."""
from __future__ import annotations

from typing import Any

from asn1crypto import pem
from flask import Blueprint, Response, current_app, jsonify, request

from ca.policy import load_csr_bytes
from ca.rekey import Renewals
from ca.storage.store import CertRecord
from pkicore.errors import ErrorKind, PkiError
from webapi.auth import public
from webapi.bodies import json_object

bp = Blueprint("admin_renewal", __name__, url_prefix="/api/v1")


def _renewals() -> Renewals:
    ctx: dict[str, Any] = current_app.extensions["udun-admin"]
    if "renewals" not in ctx:
        ca = ctx["ca"]
        ctx["renewals"] = Renewals(ca, renew_before_days=ca.settings.renew_before_days)
    return ctx["renewals"]  # type: ignore[no-any-return]


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise PkiError(ErrorKind.BAD_INPUT, f"{name} is required", field=name)
    return value


def _issued(new: CertRecord, old_serial: str) -> Response:
    assert new.der is not None
    chain = _renewals().ca.chain_der()
    resp = jsonify({"serial": new.serial, "replaces": old_serial,
                    "certificate_pem": pem.armor("CERTIFICATE", new.der).decode(),
                    "chain_pem": "".join(pem.armor("CERTIFICATE", d).decode() for d in chain)})
    resp.status_code = 201
    resp.headers["Location"] = f"/api/v1/certificates/{new.serial}"
    return resp


@bp.post("/renew")
@public
def renew() -> Response:
    """``{"serial": current, "csr": PEM for the same key and subject, "signature": base64 by
    the current key over pkicore.adminsig.renew_message, "scheme"}`` → 201, in the last
    UDUN_RENEW_BEFORE_DAYS of the current certificate's validity."""
    body = json_object(request, ("serial", "csr", "signature", "scheme"))
    serial = _text(body, "serial")
    return _issued(_renewals().renew(serial, load_csr_bytes(_text(body, "csr").encode()), _text(body, "signature"),
                                     body.get("scheme") or "ecdsa"), serial)


@bp.post("/rekey")
@public
def rekey() -> Response:
    """``{"serial": current, "csr": PEM of the new key, "signature": base64 by the current
    key over pkicore.adminsig.rekey_message, "scheme"}`` → 201; the current certificate is
    revoked as superseded."""
    body = json_object(request, ("serial", "csr", "signature", "scheme"))
    serial = _text(body, "serial")
    new, _ = _renewals().rekey(serial, load_csr_bytes(_text(body, "csr").encode()), _text(body, "signature"),
                               body.get("scheme") or "ecdsa")
    return _issued(new, serial)
