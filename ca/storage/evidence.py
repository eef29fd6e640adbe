"""Storage for evidence records, bank challenges and verification audit entries.

Each method is one transaction. Recording evidence, consuming the payment's challenge and
appending the audit entry commit together (on the raw driver path: the verify API's hot
path): a client that got an evidence_id back holds an id the database has (SQLite WAL
commits survive a killed process).
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from asn1crypto import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import bindparam, delete, func, insert, select, update

from ca.storage.audit import append, append_raw
from ca.storage.limits import Reservation, reserve
from ca.storage.otp import use_step
from ca.storage.errors import translated
from ca.evidencequery import EvidencePage, EvidenceQuery, EvidenceSummary
from ca.storage.schema import banks as _banks
from ca.storage.schema import challenges as _challenges
from ca.storage.schema import crls as _crls
from ca.storage.schema import evidence as _evidence
from ca.storage.schema import utc
from ca.storage.store import Store
from pkicore.errors import ErrorKind, PkiError
from pkicore.report import Sub


@dataclass(frozen=True)
class EvidenceRecord:
    """One stored evidence record (what a bundle is made from)."""

    id: str
    received_at: datetime
    signer_cert_sha256: str
    signer_serial: str
    tx_id: str
    content: bytes
    cms: bytes
    stamped_cms: bytes
    time_stamp: bytes
    chain: bytes
    revocation_kind: str
    revocation: bytes
    report: str
    # The CA certificates' revocation data ("ocsp"|"crl", DER), issuing CA first; None for
    # a record stored before migration 0004 (it kept the signer's status only).
    ca_revocation: tuple[tuple[str, bytes], ...] | None = None


def encode_pieces(pieces: tuple[tuple[str, bytes], ...] | list[tuple[str, bytes]]) -> str:
    """Revocation data as stored: JSON [[kind, base64 DER], ...], in order."""
    return json.dumps([[kind, base64.b64encode(data).decode()] for kind, data in pieces])


def decode_pieces(text: str | None) -> tuple[tuple[str, bytes], ...] | None:
    """The stored form read back (None stays None: a record from before migration 0004)."""
    if text is None:
        return None
    try:
        return tuple((str(kind), base64.b64decode(data, validate=True)) for kind, data in json.loads(text))
    except (ValueError, TypeError, binascii.Error) as e:
        raise PkiError(ErrorKind.INTERNAL, "an evidence record's CA revocation data does not read") from e


@functools.lru_cache(maxsize=4096)
def spki_sha256(cert_der: bytes) -> str:
    """What replay protection is keyed on: SHA-256 (hex) of the certificate's public key as
    canonical SubjectPublicKeyInfo DER (re-encoded, so two certificates of one key from CAs
    that encode it differently — RSA parameters, a compressed EC point — still agree; our
    CA stores keys in this form too). Migration 0006 computes the same for older records."""
    spki = x509.Certificate.load(cert_der).public_key.dump()
    canonical = serialization.load_der_public_key(spki).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(canonical).hexdigest()


class Replayed(Exception):
    """This signer key's tx_id was recorded before, as ``first_id``."""

    def __init__(self, first_id: str) -> None:
        super().__init__(first_id)
        self.first_id = first_id


class ChallengeRefused(Exception):
    """The payment's challenge cannot be accepted: unknown, expired or used."""

    def __init__(self, sub: Sub, detail: str) -> None:
        super().__init__(detail)
        self.sub = sub
        self.detail = detail


_e = _evidence.c
_ch = _challenges.c

# The verify API's transaction (raw driver path): every column of the record, then the challenge.
INSERT_EVIDENCE = insert(_evidence).values({c: bindparam(c.key) for c in _evidence.c})
USE_CHALLENGE = (update(_challenges)
                 .where(_ch.value == bindparam("v"), _ch.bank_id == bindparam("b"), _ch.used_at.is_(None),
                        _ch.expires_at > bindparam("now"))
                 .values(used_at=bindparam("now"), evidence_id=bindparam("eid")))
# Replay protection (migrations 0006, 0010): one payment (tx_id) per signer public key and
# bank, whichever of the key's certificates signed it; the unique index
# uq_evidence_bank_spki_tx enforces it. A NULL bank (records from before 0010) is its own case.
_FIRST = select(_e.id).where(_e.bank_id == bindparam("b"), _e.signer_spki_sha256 == bindparam("k"),
                             _e.tx_id == bindparam("t"))
_FIRST_NO_BANK = select(_e.id).where(_e.bank_id.is_(None), _e.signer_spki_sha256 == bindparam("k"),
                                     _e.tx_id == bindparam("t"))
# Another bank's challenge reads as unknown: a bank learns nothing of the others'.
_READ_CHALLENGE = select(_ch.expires_at, _ch.used_at).where(_ch.value == bindparam("v"), _ch.bank_id == bindparam("b"))


class EvidenceStore:
    """Reads and writes evidence, challenges and verification audit entries."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.raw = store.raw

    @translated
    def first_record(self, bank_id: int | None, signer_spki_sha256: str, tx_id: str) -> str | None:
        """The evidence_id the bank already stored for this tx_id signed by this key
        (``spki_sha256`` of any of its certificates), if any; ``bank_id`` None: among the
        records from before banks (migration 0010)."""
        with self.engine.connect() as conn:
            query = _FIRST if bank_id is not None else _FIRST_NO_BANK
            return cast("str | None", conn.execute(query, {"b": bank_id, "k": signer_spki_sha256,
                                                           "t": tx_id}).scalar())

    @translated
    def has_unowned_records(self) -> bool:
        """Whether records from before banks (migration 0010, bank NULL) exist. None are
        written after it, so a process asks once."""
        with self.engine.connect() as conn:
            return conn.execute(select(_e.id).where(_e.bank_id.is_(None)).limit(1)).first() is not None

    @translated
    def record(self, row: dict[str, Any], challenge: str | None, audit: dict[str, Any], now: datetime,
               actor: str, reservation: Reservation | None = None, otp_step: tuple[str, int] | None = None) -> None:
        """Store the record, use up its challenge and append the audit entry: all or none.

        ``row["ca_revocation"]``: the CA certificates' (kind, DER) pieces, issuing CA first;
        ``row["signer_spki_sha256"]``: ``spki_sha256`` of the signer certificate;
        ``row["bank_id"]``: the bank whose call it is (its challenge, its replay records).
        Raises Replayed when the bank stored the tx_id already for the signer's key, under this
        certificate or another one of the same key (the unique index decides, so two
        processes racing with one payment store it once), ChallengeRefused when the
        challenge cannot be used. ``reservation``: the payment's amount added to its customer's
        day within the daily limit (ca.storage.limits; OverLimit, nothing stored, when it
        does not fit). ``otp_step``: the OTP credential's time step taken (StepUsed when
        it was taken already).
        """
        db = self.raw
        try:
            with db.transaction() as cur:
                db.execute(cur, INSERT_EVIDENCE, {**row, "received_at": db.when(row["received_at"]),
                                                  "ca_revocation": encode_pieces(row["ca_revocation"])})
                if reservation is not None:      # after the insert: a replay is found first
                    reserve(db, cur, reservation)
                if otp_step is not None:         # the code once, on any node (ca.otp)
                    use_step(db, cur, *otp_step)
                if challenge is not None:
                    db.execute(cur, USE_CHALLENGE, {"v": challenge, "b": row["bank_id"], "now": db.when(now),
                                                    "eid": row["id"]})
                    if cur.rowcount != 1:
                        raise self._why_refused(challenge, row["bank_id"], now)
                append_raw(db, cur, action="verify", actor=actor, subject=row["id"], details=audit, now=now)
        except db.dbapi.IntegrityError as e:
            first = self.first_record(row["bank_id"], row["signer_spki_sha256"], row["tx_id"])
            if first is None:       # the conflict was something else: not a replay
                raise PkiError(ErrorKind.UNAVAILABLE, "the evidence record could not be stored") from e
            raise Replayed(first) from e

    def _why_refused(self, challenge: str, bank_id: int, now: datetime) -> ChallengeRefused:
        """Read outside the failed transaction (it is rolled back anyway)."""
        return self.challenge_state(challenge, bank_id, now) or \
            ChallengeRefused(Sub.CHALLENGE_USED, "the payment's challenge was used already")

    @translated
    def audit_only(self, subject: str, details: dict[str, Any], now: datetime, actor: str) -> None:
        """A verification that stored no evidence still goes into the audit log."""
        with self.engine.begin() as conn:
            append(conn, action="verify", actor=actor, subject=subject, details=details, now=now)

    @translated
    def get(self, evidence_id: str, *, bank_id: int | None) -> EvidenceRecord:
        """One record of the bank ``bank_id`` (another bank's reads as missing); None: any
        bank's, for operators only (the CLI), never for a bank-facing route."""
        with self.engine.connect() as conn:
            r = conn.execute(select(_evidence).where(_e.id == evidence_id)).first()
        if r is None or (bank_id is not None and r._mapping["bank_id"] != bank_id):
            raise PkiError(ErrorKind.NOT_FOUND, f"no evidence record {evidence_id}")
        m = r._mapping
        return EvidenceRecord(
            m["id"], utc(m["received_at"]), m["signer_cert_sha256"], m["signer_serial"], m["tx_id"],
            m["content"], m["cms"], m["stamped_cms"], m["time_stamp"], m["chain"], m["revocation_kind"],
            m["revocation"], m["report"], decode_pieces(m["ca_revocation"]))

    @translated
    def crl_at(self, authority_id: int, moment: datetime) -> bytes | None:
        """The CRL of an authority that was the newest published at ``moment`` (its history
        is kept), if it was still current then (thisUpdate <= moment <= nextUpdate)."""
        with self.engine.connect() as conn:
            r = conn.execute(select(_crls.c.der, _crls.c.next_update)
                             .where(_crls.c.authority_id == authority_id, _crls.c.this_update <= moment)
                             .order_by(_crls.c.number.desc()).limit(1)).first()
        if r is None or utc(r[1]) < moment:
            return None
        return cast(bytes, r[0])

    @translated
    def search(self, q: EvidenceQuery, *, bank_id: int | None) -> EvidencePage:
        """A page of ``q``, of the bank ``bank_id`` only (a bank's query: ``q.bank`` is not
        looked at), or with None of any bank, ``q.bank`` naming one (operators). Keyset
        paging on the id, newest first."""
        where: list[Any] = []
        if bank_id is not None:
            where.append(_e.bank_id == bank_id)
        elif q.bank is not None:
            where.append(_banks.c.name == q.bank)
        if q.tx_id is not None:
            where.append(_e.tx_id == q.tx_id)
        if q.signer_serial is not None:
            where.append(_e.signer_serial == q.signer_serial)
        if q.received_after is not None:
            where.append(_e.received_at >= q.received_after)
        if q.received_before is not None:
            where.append(_e.received_at < q.received_before)
        if q.before_id is not None:
            where.append(_e.id < q.before_id)
        stmt = (select(_e.id, _e.received_at, _banks.c.name, _e.signer_serial, _e.tx_id)
                .select_from(_evidence.outerjoin(_banks, _banks.c.id == _e.bank_id))
                .where(*where).order_by(_e.id.desc()).limit(q.limit + 1))
        with self.engine.connect() as conn:
            rows = [EvidenceSummary(r[0], utc(r[1]), r[2], r[3], r[4]) for r in conn.execute(stmt)]
        more = len(rows) > q.limit
        items = tuple(rows[:q.limit])
        return EvidencePage(items, items[-1].id if more else None)

    @translated
    def ids(self, limit: int = 100) -> list[tuple[str, datetime, str, str]]:
        """Newest first: (id, received at, signer serial, tx_id)."""
        with self.engine.connect() as conn:
            # ids begin with the receipt time in milliseconds: the primary key is time order
            rows = conn.execute(select(_e.id, _e.received_at, _e.signer_serial, _e.tx_id)
                                .order_by(_e.id.desc()).limit(limit))
            return [(r[0], utc(r[1]), r[2], r[3]) for r in rows]

    # --- challenges -----------------------------------------------------------------

    @translated
    def add_challenge(self, value: str, bank_id: int, now: datetime, expires_at: datetime, quota: int) -> None:
        """Store a new challenge of a bank; unused ones that expired a day ago are dropped on the
        way. RATE_LIMITED when the bank has ``quota`` open (unused, unexpired) ones already
        (checked, then inserted: concurrent calls may pass it by a few; it bounds storage)."""
        with self.engine.begin() as conn:
            open_now = conn.execute(select(func.count()).select_from(_challenges).where(
                _ch.bank_id == bank_id, _ch.expires_at > now, _ch.used_at.is_(None))).scalar() or 0
            if open_now >= quota:
                soonest = conn.execute(select(func.min(_ch.expires_at)).where(
                    _ch.bank_id == bank_id, _ch.expires_at > now, _ch.used_at.is_(None))).scalar()
                wait = max(1, int((utc(soonest) - now).total_seconds()) + 1) if soonest is not None else 1
                raise PkiError(ErrorKind.RATE_LIMITED, f"this bank has {open_now} open challenges, the most "
                               "UDUN_CHALLENGE_QUOTA allows: use or let some expire first", retry_after=wait)
            conn.execute(insert(_challenges), {"value": value, "bank_id": bank_id, "created_at": now,
                                               "expires_at": expires_at})
            conn.execute(delete(_challenges).where(_ch.used_at.is_(None), _ch.expires_at < now - timedelta(days=1)))

    @translated
    def challenge_state(self, value: str, bank_id: int, now: datetime) -> ChallengeRefused | None:
        """Why the bank's challenge cannot be used now, or None when it can (a read-only pre-check)."""
        with self.engine.connect() as conn:
            return _refusal(conn.execute(_READ_CHALLENGE, {"v": value, "b": bank_id}).first(), now)


def _refusal(found: Any, now: datetime) -> ChallengeRefused | None:
    """Why a challenge row (expires_at, used_at), or its absence, refuses use at ``now``."""
    if found is None:
        return ChallengeRefused(Sub.CHALLENGE_UNKNOWN, "the payment's challenge was not issued to this bank by this server")
    if found[1] is not None:
        return ChallengeRefused(Sub.CHALLENGE_USED, "the payment's challenge was used already")
    if utc(found[0]) <= now:
        return ChallengeRefused(Sub.CHALLENGE_EXPIRED,
                                f"the payment's challenge expired at {utc(found[0]):%Y-%m-%d %H:%M:%S}Z")
    return None
