"""JSON shapes of stored records."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from asn1crypto import pem

from ca.certquery import summary
from ca.storage.store import CertRecord


def certificate_pem(der: bytes | None) -> str | None:
    return pem.armor("CERTIFICATE", der).decode() if der else None


def certificate_json(rec: CertRecord, now: datetime) -> dict[str, Any]:
    """A certificate on the admin API: ca.certquery's summary (current status included)
    and the certificate itself."""
    return {**summary(rec, now), "certificate_pem": certificate_pem(rec.der)}
