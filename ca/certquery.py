"""Finding certificates (issue 12): what an operator asks `udun ca list` or
GET /api/v1/certificates, checked once here, and each certificate's current status.

The query is pure data: the store (ca.storage.search) turns it into SQL, the CLI and the
admin API build it from their own inputs through ``CertificateQuery.build``, so both
refuse the same bad input with the same message and ``field``.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pkicore.clock import rfc3339
from pkicore.errors import ErrorKind, PkiError

if TYPE_CHECKING:          # the CLI imports this module for its option lists: keep it light
    from ca.storage.store import CertRecord, StatusEventRecord

# A certificate's status as an operator reads it. pending and failed are issuance intents
# (no certificate was signed, or none is known to be); the rest are issued certificates:
# on-hold and revoked as on the CRL (RFC 5280 §5.3.1), expired once notAfter has passed
# (a revoked or held certificate stays revoked or on-hold: the CRL still lists it).
STATUSES = ("good", "on-hold", "revoked", "expired", "pending", "failed")
MAX_LIMIT = 1000
# CertificateQuery.build's inputs: the admin API's query parameters, the CLI's options.
SEARCH_PARAMETERS = ("subject", "serial", "status", "profile", "issued_after", "issued_before", "expiring_after",
                     "expiring_before", "limit", "cursor")
_HEX = re.compile(r"[0-9a-f]{1,40}").fullmatch


def current_status(rec: CertRecord, now: datetime) -> str:
    if rec.state != "issued":
        return rec.state
    if rec.status == "on_hold":
        return "on-hold"
    if rec.status == "revoked":
        return "revoked"
    return "expired" if rec.not_after <= now else "good"


def _z(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment is not None else None


def summary(rec: CertRecord, now: datetime) -> dict[str, Any]:
    """A certificate as `ca list --json`, `ca show --json` and the admin API show it
    (without the certificate itself)."""
    return {
        "serial": rec.serial,
        "status": current_status(rec, now),
        "state": rec.state,
        "profile": rec.profile,
        "subject": rec.subject,
        "not_before": _z(rec.not_before),
        "not_after": _z(rec.not_after),
        "requested_at": _z(rec.created_at),
        "requester": rec.requester,
        "issued_at": _z(rec.issued_at),
        "revoked_at": _z(rec.revoked_at),           # revocation or hold time
        "revocation_reason": rec.revocation_reason,
        "invalidity_date": _z(rec.invalidity_date),
    }


def detail(rec: CertRecord, history: list[StatusEventRecord], now: datetime) -> dict[str, Any]:
    """``summary`` with the status history, oldest first (`ca show --json`, the admin API)."""
    return {**summary(rec, now), "history": [
        {"action": ev.action, "reason": ev.reason, "invalidity_date": _z(ev.invalidity_date), "actor": ev.actor,
         "at": _z(ev.at)} for ev in history]}


def _bad(field: str, message: str) -> PkiError:
    return PkiError(ErrorKind.BAD_INPUT, message, field=field)


def query_time(field: str, value: str | datetime | None) -> datetime | None:
    """An RFC 3339 time or a date (midnight UTC); without a zone, UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise _bad(field, f"{field} must be a date (2026-12-31) or an RFC 3339 time "
                              "(2026-12-31T08:00:00Z)") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def page_limit(limit: int | str | None, most: int, default: int = 100) -> int:
    """A page size from text (a query parameter, a CLI option): 1 to ``most``."""
    if limit is None or limit == "":
        return default
    try:
        count = int(limit)
    except ValueError:
        raise _bad("limit", f"limit is a whole number from 1 to {most}") from None
    if not 1 <= count <= most:
        raise _bad("limit", f"limit is a whole number from 1 to {most}")
    return count


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after this (created_at, serial) in newest-first order."""

    created_at: datetime
    serial: str

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.serial}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            at, serial = raw.split("|")
            moment = datetime.fromisoformat(at)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise _bad("cursor", "cursor is not one this server gave (use next_cursor as it is)") from None
        if moment.tzinfo is None or not _HEX(serial):
            raise _bad("cursor", "cursor is not one this server gave (use next_cursor as it is)")
        return cls(moment, serial)


@dataclass(frozen=True)
class CertificateQuery:
    """Filters (all optional, combined with AND), newest first, ``limit`` a page."""

    subject: str | None = None            # case-insensitive substring of the subject DN
    serial: str | None = None             # hex prefix, lowercase, no 0x
    status: str | None = None             # one of STATUSES
    profile: str | None = None
    issued_after: datetime | None = None  # issued at or after
    issued_before: datetime | None = None
    expiring_after: datetime | None = None    # notAfter at or after
    expiring_before: datetime | None = None
    limit: int = 100
    after: Cursor | None = None

    @classmethod
    def build(cls, *, subject: str | None = None, serial: str | None = None, status: str | None = None,
              profile: str | None = None, issued_after: str | datetime | None = None,
              issued_before: str | datetime | None = None, expiring_after: str | datetime | None = None,
              expiring_before: str | datetime | None = None, limit: int | str | None = None,
              cursor: str | None = None) -> CertificateQuery:
        """From text inputs (query parameters, CLI options); a PkiError(bad-input) naming
        the field for any it cannot take."""
        subject = subject.strip() if subject else None
        if subject is not None and len(subject) > 256:
            raise _bad("subject", "subject text is at most 256 characters")
        if serial:
            serial = serial.strip().lower().removeprefix("0x")
            if not _HEX(serial):
                raise _bad("serial", "serial is hex digits (a prefix of the serial), at most 40")
        if status is not None and status not in STATUSES:
            raise _bad("status", f"status is one of {', '.join(STATUSES)}")
        from ca.profiles import PROFILES

        if profile is not None and profile not in PROFILES:
            raise _bad("profile", f"profile is one of {', '.join(PROFILES)}")
        count = page_limit(limit, MAX_LIMIT)
        q = cls(subject or None, serial or None, status, profile, query_time("issued_after", issued_after),
                query_time("issued_before", issued_before), query_time("expiring_after", expiring_after),
                query_time("expiring_before", expiring_before), count, Cursor.decode(cursor) if cursor else None)
        for low, high, name in ((q.issued_after, q.issued_before, "issued"),
                                (q.expiring_after, q.expiring_before, "expiring")):
            if low is not None and high is not None and high <= low:
                raise _bad(f"{name}_before", f"{name}_before must be later than {name}_after")
        return q


@dataclass(frozen=True)
class Page:
    items: tuple[CertRecord, ...]
    next_cursor: str | None               # None: this was the last page
