"""Finding evidence records (issue 12, point 4): what a bank asks GET /api/v1/evidence, an
operator the admin API or `udun evidence list`, checked once here (as ca.certquery does for
certificates). A bank's query is bound to its own records by the caller, never by a field
the bank sends; operators may name a bank.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from ca.certquery import page_limit, query_time
from pkicore.errors import ErrorKind, PkiError

MAX_LIMIT = 10_000
# EvidenceQuery.build's inputs: the APIs' query parameters (a bank's without ``bank``), the CLI's options.
BANK_PARAMETERS = ("tx_id", "signer_serial", "received_after", "received_before", "limit", "cursor")
OPERATOR_PARAMETERS = ("bank", *BANK_PARAMETERS)
_ID = re.compile(r"ev_[0-9a-f]{32}").fullmatch
_SERIAL = re.compile(r"[0-9a-f]{1,40}").fullmatch


def _bad(field: str, message: str) -> PkiError:
    return PkiError(ErrorKind.BAD_INPUT, message, field=field)


@dataclass(frozen=True)
class EvidenceQuery:
    """Filters (all optional, AND), newest first (evidence ids begin with the receipt time)."""

    bank: str | None = None               # operators only: the bank's name
    tx_id: str | None = None              # exact
    signer_serial: str | None = None      # exact, lowercase hex
    received_after: datetime | None = None
    received_before: datetime | None = None
    limit: int = 100
    before_id: str | None = None          # the cursor: the last id of the page before

    @classmethod
    def build(cls, *, bank: str | None = None, tx_id: str | None = None, signer_serial: str | None = None,
              received_after: str | datetime | None = None, received_before: str | datetime | None = None,
              limit: int | str | None = None, cursor: str | None = None) -> EvidenceQuery:
        if tx_id is not None and not 1 <= len(tx_id) <= 128:
            raise _bad("tx_id", "tx_id is 1 to 128 characters")
        if signer_serial:
            signer_serial = signer_serial.strip().lower().removeprefix("0x")
            if not _SERIAL(signer_serial):
                raise _bad("signer_serial", "signer_serial is the certificate's serial in hex, at most 40 digits")
        if cursor and not _ID(cursor):
            raise _bad("cursor", "cursor is not one this server gave (use next_cursor as it is)")
        q = cls(bank or None, tx_id or None, signer_serial or None, query_time("received_after", received_after),
                query_time("received_before", received_before), page_limit(limit, MAX_LIMIT), cursor or None)
        if q.received_after and q.received_before and q.received_before <= q.received_after:
            raise _bad("received_before", "received_before must be later than received_after")
        return q


def from_parameters(args: dict[str, str], known: tuple[str, ...]) -> EvidenceQuery:
    """The query of an API request's parameters; an unknown one is a 400 naming it (a bank
    that sends ``bank`` gets that, not another bank's records)."""
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise _bad(unknown[0], f"unknown query parameter {unknown[0]!r}; known: {', '.join(known)}")
    return EvidenceQuery.build(**{name: args.get(name) for name in known})  # type: ignore[arg-type]


@dataclass(frozen=True)
class EvidenceSummary:
    id: str
    received_at: datetime
    bank: str | None                       # None: stored before banks (migration 0010)
    signer_serial: str
    tx_id: str


@dataclass(frozen=True)
class EvidencePage:
    items: tuple[EvidenceSummary, ...]
    next_cursor: str | None


def summary_json(s: EvidenceSummary) -> dict[str, object]:
    from pkicore.clock import rfc3339

    return {"evidence_id": s.id, "received_at": rfc3339(s.received_at), "bank": s.bank,
            "signer_serial": s.signer_serial, "tx_id": s.tx_id}
