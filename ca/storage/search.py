"""The SQL of a certificate search (ca.certquery): one indexed query per page, keyset
paging on (created_at, serial) newest first, so page N costs what page 1 costs."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Engine

from ca.certquery import CertificateQuery, Cursor, Page
from ca.storage.errors import translated
from ca.storage.schema import certificates as _certs
from ca.storage.store import cert_record

_c = _certs.c


def _status(status: str, now: datetime) -> Any:
    """The WHERE clause of one ca.certquery status."""
    if status in ("pending", "failed"):
        return _c.state == status
    issued = _c.state == "issued"
    if status == "on-hold":
        return and_(issued, _c.status == "on_hold")
    if status == "revoked":
        return and_(issued, _c.status == "revoked")
    if status == "expired":
        return and_(issued, _c.status == "good", _c.not_after <= now)
    return and_(issued, _c.status == "good", _c.not_after > now)        # good


@translated
def search(engine: Engine, q: CertificateQuery, now: datetime) -> Page:
    where: list[Any] = []
    if q.subject:
        where.append(func.lower(_c.subject).contains(q.subject.lower(), autoescape=True))
    if q.serial:
        where.append(_c.serial.startswith(q.serial, autoescape=True))
    if q.status:
        where.append(_status(q.status, now))
    if q.profile:
        where.append(_c.profile == q.profile)
    if q.issued_after:
        where.append(_c.issued_at >= q.issued_after)
    if q.issued_before:
        where.append(_c.issued_at < q.issued_before)
    if q.expiring_after:
        where.append(_c.not_after >= q.expiring_after)
    if q.expiring_before:
        where.append(_c.not_after < q.expiring_before)
    if q.after:
        where.append(or_(_c.created_at < q.after.created_at,
                         and_(_c.created_at == q.after.created_at, _c.serial < q.after.serial)))
    stmt = select(_certs).where(*where).order_by(_c.created_at.desc(), _c.serial.desc()).limit(q.limit + 1)
    with engine.connect() as conn:
        rows = [cert_record(r) for r in conn.execute(stmt)]
    more = len(rows) > q.limit
    items = tuple(rows[:q.limit])
    last = items[-1] if more else None
    return Page(items, Cursor(last.created_at, last.serial).encode() if last else None)
