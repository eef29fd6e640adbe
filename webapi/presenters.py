"""JSON shapes of stored records."""
from __future__ import annotations

from typing import Any

from asn1crypto import pem

from ca.storage.store import CertRecord


def certificate_json(rec: CertRecord) -> dict[str, Any]:
    return {
        "serial": rec.serial,
        "state": rec.state,
        "profile": rec.profile,
        "subject": rec.subject,
        "not_before": rec.not_before.isoformat().replace("+00:00", "Z"),
        "not_after": rec.not_after.isoformat().replace("+00:00", "Z"),
        "issued_at": rec.issued_at.isoformat().replace("+00:00", "Z") if rec.issued_at else None,
        "certificate_pem": pem.armor("CERTIFICATE", rec.der).decode() if rec.der else None,
    }
