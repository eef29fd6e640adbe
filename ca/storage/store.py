"""The storage authority: authorities, certificates and their status, blocked keys, CRLs.

Each method is one transaction. Statements are Core, built from ca.storage.schema; the
issuance intent and the issued certificate (and the shared-counter read of every OCSP
answer and verification) run on the raw driver path (ca.storage.raw), the same statements
compiled once, because there SQLAlchemy's per-statement cost is as large as the token's
signature (make bench: issuance).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import unicodedata
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, NamedTuple

from asn1crypto import x509
from sqlalchemy import Integer, bindparam, exists, func, insert, literal_column, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ca.storage.audit import append, append_raw
from ca.storage.counters import READ as _READ_COUNTER
from ca.storage.counters import bump
from ca.storage.errors import db_errors, translated
from ca.storage.raw import RawDb
from ca.storage.schema import authorities as _authorities
from ca.storage.schema import blocked_keys as _blocked_keys
from ca.storage.schema import certificate_customers as _bound
from ca.storage.schema import certificates as _certs
from ca.storage.schema import crls as _crls
from ca.storage.schema import opt_utc, utc
from ca.storage.schema import status_events as _events
from pkicore.errors import ErrorKind, PkiError


@dataclass(frozen=True)
class AuthorityRecord:
    id: int
    name: str
    token_label: str
    key_id: bytes
    key_type: str
    subject: str
    cert_der: bytes


@dataclass(frozen=True)
class NewAuthority:
    name: str
    token_label: str
    key_id: bytes
    key_type: str
    subject: str
    cert_der: bytes
    not_after: datetime


@dataclass(frozen=True)
class CertRecord:
    serial: str
    authority_id: int
    state: str
    profile: str
    subject: str
    requester: str
    tbs_sha256: str
    not_before: datetime
    not_after: datetime
    created_at: datetime
    issued_at: datetime | None
    der: bytes | None
    status: str = "good"                     # good | on_hold | revoked
    revoked_at: datetime | None = None       # revocation or hold time
    revocation_reason: str | None = None     # RFC 5280 §5.3.1 name, e.g. keyCompromise
    invalidity_date: datetime | None = None  # RFC 5280 §5.3.2


@dataclass(frozen=True)
class StatusEventRecord:
    action: str
    reason: str | None
    invalidity_date: datetime | None
    actor: str
    at: datetime


class RevokedEntry(NamedTuple):
    """One CRL entry. A NamedTuple, not a frozen dataclass like the others: a CRL reads
    a million of them, and this one is made in half the time (immutable all the same)."""

    serial: int
    revoked_at: datetime
    reason: str | None
    invalidity_date: datetime | None


@dataclass(frozen=True)
class CrlRecord:
    authority_id: int
    number: int
    this_update: datetime
    next_update: datetime
    entries: int
    der: bytes


def _authority(row: Any) -> AuthorityRecord:
    return AuthorityRecord(row.id, row.name, row.token_label, bytes.fromhex(row.key_id), row.key_type,
                           row.subject, row.cert_der)


def cert_record(row: Any) -> CertRecord:
    return CertRecord(
        row.serial, row.authority_id, row.state, row.profile, row.subject, row.requester, row.tbs_sha256,
        utc(row.not_before), utc(row.not_after), utc(row.created_at), opt_utc(row.issued_at), row.der,
        row.status, opt_utc(row.revoked_at), row.revocation_reason, opt_utc(row.invalidity_date),
    )


def _key_event(row: NewAuthority, event: str) -> dict[str, Any]:
    """An audit entry's details for a CA, OCSP responder or TSA key and its certificate."""
    return {"event": event, "token": row.token_label, "key_id": row.key_id.hex(), "key_type": row.key_type,
            "certificate_sha256": hashlib.sha256(row.cert_der).hexdigest(), "not_after": row.not_after.isoformat()}


def spki_sha256(public_key_der: bytes) -> str:
    """What certificates and blocked keys are keyed by: SHA-256 hex of the SubjectPublicKeyInfo DER."""
    return hashlib.sha256(public_key_der).hexdigest()


def _fold(value: str) -> str:
    """A name value compared the way people read it: NFKC, case-folded, runs of spaces as one."""
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


@dataclass(frozen=True)
class _NameKey:
    """A subject reduced for comparison: its attributes (type OID, folded value), and its CN."""

    attributes: tuple[tuple[str, str], ...]
    common_name: str | None


def _name_key(name: x509.Name) -> _NameKey:
    pairs, cn = [], None
    for rdn in name.chosen:
        for atv in rdn:
            value = atv["value"].native
            folded = _fold(value if isinstance(value, str) else repr(value))
            pairs.append((atv["type"].dotted, folded))
            if atv["type"].native == "common_name":
                cn = folded
    return _NameKey(tuple(sorted(pairs)), cn)


@functools.lru_cache(maxsize=1024)
def _subject_key(subject_der: bytes) -> _NameKey:
    """_name_key of a subject's DER, remembered: renewals and batches repeat subjects."""
    return _name_key(x509.Name.load(subject_der))


def _lock_id(spki: str) -> int:
    """A PostgreSQL advisory lock number (bigint) for one public key."""
    return int.from_bytes(bytes.fromhex(spki[:16]), "big", signed=True)


# The authority row a delegated profile's certificates are named like: the renewal of an
# OCSP responder or TSA key (ca.renewal) asks for the subject of the certificate it replaces.
_OWN_AUTHORITY = {"ocsp-responder": "ocsp", "tsa": "tsa"}

KEY_COMPROMISE = "keyCompromise"
_BLOCKED_MESSAGE = "this public key was revoked for key compromise and can never be certified again"

_c = _certs.c
# Store.one_read_per_counter's values (None outside such a block).
_counters_seen: ContextVar[dict[str, int] | None] = ContextVar("udun_counters_seen", default=None)
# What a CRL lists (RFC 5280 §5.1.2.6): revoked and held certificates of one authority.
_LISTED = select(_c.serial, _c.revoked_at, _c.revocation_reason, _c.invalidity_date).where(
    _c.authority_id == bindparam("authority_id"), or_(_c.status == "revoked", _c.status == "on_hold"))

# --- the issuance path's statements (raw driver path) -------------------------------------

INSERT_INTENT = insert(_certs).values(
    serial=bindparam("serial"), authority_id=bindparam("authority_id"), state="pending",
    profile=bindparam("profile"), subject=bindparam("subject"), requester=bindparam("requester"),
    tbs_sha256=bindparam("tbs_hash"), not_before=bindparam("not_before"), not_after=bindparam("not_after"),
    created_at=bindparam("created_at"), status="good", spki_sha256=bindparam("spki"))
MARK_ISSUED = (update(_certs).where(_c.serial == bindparam("serial"), _c.state == "pending")
               .values(state="issued", der=bindparam("der"), cert_sha256=bindparam("cert_hash"),
                       issued_at=bindparam("issued_at")))
# The certificate's customer (ca.customers), written with the certificate (migration 0014).
BIND_CUSTOMER = insert(_bound).values(cert_sha256=bindparam("cert_hash"), serial=bindparam("serial"),
                                      customer_id=bindparam("customer"),
                                      bound_by=bindparam("by"), bound_at=bindparam("at"))
BLOCKED = (select(literal_column("1", Integer)).select_from(_blocked_keys)
           .where(_blocked_keys.c.spki_sha256 == bindparam("spki")))


def _live() -> Any:
    """Being issued or issued: a failed certificate was never signed. (Not ``in_``: the raw
    path takes no expanding parameters.)"""
    return or_(_c.state == "pending", _c.state == "issued")


# Another live certificate on this key under another subject. As two ranges, below and
# above the subject, so that both are short reads of the (spki_sha256, subject) index
# (migration 0008) however many certificates the key has under this subject; "<>" would
# read them all.
SAME_KEY_OTHER_SUBJECT = select(literal_column("1", Integer)).where(or_(
    exists().where(_c.spki_sha256 == bindparam("spki"), _c.subject < bindparam("subject"), _live()),
    exists().where(_c.spki_sha256 == bindparam("spki"), _c.subject > bindparam("subject"), _live())))
AUTHORITY_CERTS = select(_authorities.c.name, _authorities.c.cert_der)
KEY_LOCK = select(func.pg_advisory_xact_lock(bindparam("lock")))

_READ_STATUS = select(_c.authority_id, _c.state, _c.status, _c.revoked_at,
                      _c.revocation_reason).where(_c.serial == bindparam("s"))


class Store:
    """Reads and writes authorities and certificates; each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.raw = RawDb(engine)          # the hot paths' statements (ca.storage.raw)
        self._postgres = engine.dialect.name == "postgresql"
        self._authority_names: dict[bytes, _NameKey] = {}

    # --- authorities ----------------------------------------------------------------

    @translated
    def add_authorities(self, rows: list[NewAuthority], now: datetime) -> list[AuthorityRecord]:
        """Store several authorities in one transaction: all or none."""
        with self.engine.begin() as conn:
            out = []
            with db_errors(conflict="the CA is initialised already"):
                for r in rows:
                    key = conn.execute(insert(_authorities).values(
                        name=r.name, token_label=r.token_label, key_id=r.key_id.hex(), key_type=r.key_type,
                        subject=r.subject, cert_der=r.cert_der, not_after=r.not_after, created_at=now,
                    )).inserted_primary_key
                    assert key is not None
                    out.append(AuthorityRecord(int(key[0]), r.name, r.token_label, r.key_id, r.key_type, r.subject,
                                               r.cert_der))
            for r in rows:
                append(conn, action="key", actor="ca-init", subject=r.name,
                       details=_key_event(r, "CA key and certificate"), now=now)
            return out

    @translated
    def replace_authority(self, row: NewAuthority, now: datetime) -> AuthorityRecord:
        """Store a renewed key/certificate under an existing name (OCSP responder, TSA)."""
        a = _authorities
        with self.engine.begin() as conn:
            append(conn, action="key", actor="udun", subject=row.name,
                   details=_key_event(row, "new key and certificate"), now=now)
            values = {"token_label": row.token_label, "key_id": row.key_id.hex(), "key_type": row.key_type,
                      "subject": row.subject, "cert_der": row.cert_der, "not_after": row.not_after}
            found = conn.execute(select(a.c.id).where(a.c.name == row.name)).scalar()
            if found is None:
                key = conn.execute(insert(a).values(name=row.name, created_at=now, **values)).inserted_primary_key
                assert key is not None
                found = key[0]
            else:
                conn.execute(update(a).where(a.c.id == found).values(**values))
            return AuthorityRecord(int(found), row.name, row.token_label, row.key_id, row.key_type, row.subject,
                                   row.cert_der)

    @translated
    def authority(self, name: str) -> AuthorityRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_authorities).where(_authorities.c.name == name)).first()
        return _authority(row) if row else None

    # --- issuance (raw driver path) ---------------------------------------------------

    def _lock_key(self, cur: Any, spki: str) -> None:
        """PostgreSQL: serialise every transaction about one public key (an intent, a
        keyCompromise revocation) until it ends. SQLite needs nothing: the first write of
        each of them takes the one database write lock, and their checks come after it."""
        if self._postgres:
            self.raw.execute(cur, KEY_LOCK, {"lock": _lock_id(spki)})

    def _authority_keys(self, cur: Any) -> list[tuple[str, _NameKey]]:
        """(name, subject key) of every authority row: root, issuing CA, OCSP responder, TSA."""
        self.raw.execute(cur, AUTHORITY_CERTS)
        out = []
        for name, der in cur.fetchall():
            der = bytes(der)
            key = self._authority_names.get(der)
            if key is None:
                key = _name_key(x509.Certificate.load(der).subject)
                if len(self._authority_names) > 64:       # renewed delegated certificates pile up
                    self._authority_names.clear()
                self._authority_names[der] = key
            out.append((name, key))
        return out

    def _check_impersonation(self, cur: Any, profile: str, wanted: _NameKey) -> None:
        """Refuse a subject named like one of this CA's own certificates (whole DN or CN)."""
        own = _OWN_AUTHORITY.get(profile)
        for name, key in self._authority_keys(cur):
            if name == own:
                continue
            if wanted.attributes == key.attributes:
                raise PkiError(ErrorKind.POLICY, f"the subject is the name of this CA's {name} certificate: "
                                                 "a certificate cannot be issued in a CA's name")
            if wanted.common_name is not None and wanted.common_name == key.common_name:
                raise PkiError(ErrorKind.POLICY, f"the subject's CN is the CN of this CA's {name} certificate: "
                                                 "a certificate cannot be issued in a CA's name")

    def record_intent(self, *, serial: str, authority_id: int, profile: str, subject: str, requester: str,
                      tbs_sha256: str, not_before: datetime, not_after: datetime, now: datetime,
                      public_key_der: bytes, subject_der: bytes) -> bool:
        """Phase one: remember the serial, TBS hash and key. False if the serial was taken.

        Key and subject policy in the same transaction, after the insert has taken the write
        lock (SQLite) or the key's lock (PostgreSQL), so that two requests for one key cannot
        both pass: the key must not be blocked (keyCompromise), nor certified for another
        subject (the same subject again is a renewal), and the subject must not be named like
        one of this CA's own certificates. A refusal (PkiError POLICY) stores nothing.
        """
        db = self.raw
        spki = spki_sha256(public_key_der)
        # Parsed before the transaction: the write lock (SQLite: the whole database) is held
        # for the statements only, not for ~0.2 ms of asn1crypto (issuance from several workers).
        wanted = _subject_key(subject_der)
        try:
            with db.transaction() as cur:
                db.execute(cur, INSERT_INTENT, {
                    "serial": serial, "authority_id": authority_id, "profile": profile, "subject": subject,
                    "requester": requester, "tbs_hash": tbs_sha256, "not_before": db.when(not_before),
                    "not_after": db.when(not_after), "created_at": db.when(now), "spki": spki})
                self._lock_key(cur, spki)
                db.execute(cur, BLOCKED, {"spki": spki})
                if cur.fetchone() is not None:
                    raise PkiError(ErrorKind.POLICY, _BLOCKED_MESSAGE)
                db.execute(cur, SAME_KEY_OTHER_SUBJECT, {"spki": spki, "subject": subject})
                if cur.fetchone() is not None:
                    raise PkiError(ErrorKind.POLICY, "this public key is certified for another subject already: "
                                                     "a key may be certified for one subject only")
                self._check_impersonation(cur, profile, wanted)
        except db.dbapi.IntegrityError:
            return False
        return True

    def record_issued(self, serial: str, der: bytes, cert_sha256: str, now: datetime, *,
                      profile: str = "client", subject: str = "", requester: str = "cli",
                      customer: str | None = None) -> None:
        """Phase two: the signed certificate, its customer if it has one, and its audit entry."""
        db = self.raw
        details: dict[str, Any] = {"profile": profile, "subject": subject, "certificate_sha256": cert_sha256}
        with db.transaction() as cur:
            db.execute(cur, MARK_ISSUED, {"serial": serial, "der": der, "cert_hash": cert_sha256,
                                          "issued_at": db.when(now)})
            if cur.rowcount != 1:
                raise PkiError(ErrorKind.INTERNAL, f"serial {serial} was not pending")
            if customer is not None:
                db.execute(cur, BIND_CUSTOMER, {"cert_hash": cert_sha256, "serial": serial, "customer": customer,
                                                "by": requester,
                                                "at": db.when(now)})
                details["customer"] = customer
            append_raw(db, cur, action="issue", actor=requester, subject=serial, details=details, now=now)

    @translated
    def record_failed(self, serial: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(_certs).where(_c.serial == serial, _c.state == "pending").values(state="failed"))

    @translated
    def abandon_pending(self, created_before: datetime, reason: str, actor: str, now: datetime) -> list[str]:
        """Intents still pending from before ``created_before`` (a crash between the intent
        and storing the certificate) become ``failed`` and are listed as revoked: nobody was
        given such a certificate, but the token may have signed it, so a CRL names the serial
        (reason unspecified) and OCSP keeps answering unknown. One transaction, audited."""
        with self.engine.begin() as conn:
            bump(conn, "status_version")
            rows = conn.execute(select(_certs).where(_c.state == "pending", _c.created_at < created_before)).all()
            for row in rows:
                conn.execute(update(_certs).where(_c.serial == row.serial).values(
                    state="failed", status="revoked", revoked_at=now.replace(microsecond=0),
                    revocation_reason="unspecified"))
                conn.execute(insert(_events).values(serial=row.serial, action="abandon", reason="unspecified",
                                                    invalidity_date=None, actor=actor, at=now))
                append(conn, action="abandon", actor=actor, subject=row.serial,
                       details={"reason": reason, "profile": row.profile, "subject": row.subject,
                                "tbs_sha256": row.tbs_sha256, "created_at": utc(row.created_at).isoformat()},
                       now=now)
            return [r.serial for r in rows]

    # --- certificates ----------------------------------------------------------------

    @translated
    def successor(self, serial: str, spki: str, subject: str, not_after: datetime) -> str | None:
        """Another certificate for the same key and subject as ``serial`` that ends no
        earlier (a renewal made already), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_c.serial).where(_c.spki_sha256 == spki, _c.subject == subject,
                                                       _c.serial != serial, _c.state.in_(("issued", "pending")),
                                                       _c.not_after >= not_after).limit(1)).first()
        return row.serial if row is not None else None

    @translated
    def record_authority_certificate(self, name: str, issuer: str, now: datetime) -> str:
        """The certificate of authority ``name`` (the issuing CA) as a certificate of its
        issuer (the root): so that the root's CRL can list it once it is revoked. Made when
        first needed (``ca init`` keeps CA certificates in authorities only); its serial."""
        subject = self.authority(name)
        parent = self.authority(issuer)
        if subject is None or parent is None:
            raise PkiError(ErrorKind.NOT_INITIALISED, "the CA is not initialised: run `udun ca init`")
        cert = x509.Certificate.load(subject.cert_der)
        serial = format(cert.serial_number, "x")
        validity = cert["tbs_certificate"]["validity"]
        with contextlib.suppress(IntegrityError), self.engine.begin() as conn:     # IntegrityError: a
            # concurrent call made the row first, which is all that is wanted
            if conn.execute(select(_c.serial).where(_c.serial == serial)).first() is None:
                conn.execute(insert(_certs).values(
                    serial=serial, authority_id=parent.id, state="issued", profile=f"{name}-ca", subject=subject.subject,
                    requester="ca init", tbs_sha256=hashlib.sha256(cert["tbs_certificate"].dump()).hexdigest(),
                    not_before=validity["not_before"].native, not_after=validity["not_after"].native,
                    created_at=now, issued_at=now, der=subject.cert_der,
                    cert_sha256=hashlib.sha256(subject.cert_der).hexdigest(), status="good",
                    spki_sha256=spki_sha256(cert.public_key.dump())))
        return serial

    @translated
    def certificate(self, serial: str) -> CertRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_certs).where(_c.serial == serial.lower())).first()
        return cert_record(row) if row else None

    @translated
    def certificates(self, limit: int = 100, offset: int = 0) -> list[CertRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(_certs).order_by(_c.created_at.desc(), _c.serial).limit(limit).offset(offset))
            return [cert_record(r) for r in rows]

    @translated
    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(_certs)).scalar() or 0)

    # --- status -------------------------------------------------------------------

    @translated
    def change_status(self, serial: str, *, allowed_from: tuple[str, ...], status: str, action: str,
                      reason: str | None, revoked_at: datetime | None, invalidity_date: datetime | None,
                      actor: str, now: datetime) -> CertRecord:
        """Move a certificate between statuses in one transaction, with its history row.

        The UPDATE names the statuses it may start from, so two operators acting at once
        cannot both succeed on a state that only allows one of them. A revocation for
        keyCompromise also blocks the public key for ever and revokes, in the same
        transaction, every other certificate on that key that is not revoked yet.
        """
        with self.engine.begin() as conn:
            # The counter first: its UPDATE takes the write lock (pysqlite begins at the
            # first DML), so the status read next is the one this change replaces.
            bump(conn, "status_version")
            row = conn.execute(select(_certs).where(_c.serial == serial.lower())).first()
            if row is None or row.state != "issued":
                raise PkiError(ErrorKind.NOT_FOUND, f"no issued certificate with serial {serial}")
            done = conn.execute(update(_certs).where(_c.serial == row.serial, _c.status.in_(allowed_from))
                                .values(status=status, revoked_at=revoked_at, revocation_reason=reason,
                                        invalidity_date=invalidity_date))
            if done.rowcount != 1:
                current = conn.execute(select(_c.status).where(_c.serial == row.serial)).scalar()
                raise PkiError(ErrorKind.CONFLICT, f"certificate {row.serial} is {current}: cannot {action} it")
            details: dict[str, Any] = {
                "reason": reason, "from": row.status, "to": status,
                "invalidity_date": invalidity_date.isoformat() if invalidity_date else None}
            same_key: list[tuple[str, str]] = []
            if status == "revoked" and reason == KEY_COMPROMISE:
                spki, same_key = self._block_key(conn, row, now)
                details["blocked_key_spki_sha256"] = spki
                details["same_key_revoked"] = [sib for sib, _ in same_key]
            self._event(conn, row.serial, action, reason, invalidity_date, actor, now)
            append(conn, action=action, actor=actor, subject=row.serial, details=details, now=now)
            if same_key:
                moved = conn.execute(
                    update(_certs)
                    .where(_c.serial.in_([sib for sib, _ in same_key]), _c.status.in_(("good", "on_hold")))
                    .values(status="revoked", revoked_at=revoked_at, revocation_reason=reason,
                            invalidity_date=invalidity_date))
                if moved.rowcount != len(same_key):
                    raise PkiError(ErrorKind.CONFLICT, "a certificate on the same key changed meanwhile: try again")
                for sib, was in same_key:
                    self._event(conn, sib, action, reason, invalidity_date, actor, now)
                    append(conn, action=action, actor=actor, subject=sib, details={
                        "reason": reason, "from": was, "to": status, "invalidity_date": details["invalidity_date"],
                        "same_key_as": row.serial, "blocked_key_spki_sha256": details["blocked_key_spki_sha256"],
                    }, now=now)
        rec = self.certificate(serial)
        assert rec is not None
        return rec

    @staticmethod
    def _event(conn: Connection, serial: str, action: str, reason: str | None, invalidity_date: datetime | None,
               actor: str, now: datetime) -> None:
        conn.execute(insert(_events).values(serial=serial, action=action, reason=reason,
                                            invalidity_date=invalidity_date, actor=actor, at=now))

    def _block_key(self, conn: Connection, row: Any, now: datetime) -> tuple[str, list[tuple[str, str]]]:
        """Inside change_status: block ``row``'s public key; (serial, status) of the other
        certificates on it not revoked yet, issued or being issued (those will be signed
        already revoked; a failed one was never signed)."""
        b = _blocked_keys
        spki = row.spki_sha256
        if spki is None:            # a row migration 0005 could not read
            if row.der is None:
                raise PkiError(ErrorKind.INTERNAL, f"certificate {row.serial} has no DER")
            spki = spki_sha256(x509.Certificate.load(row.der).public_key.dump())
        if self._postgres:                                 # as in record_intent
            conn.execute(KEY_LOCK, {"lock": _lock_id(spki)})
        if conn.execute(select(b.c.spki_sha256).where(b.c.spki_sha256 == spki)).scalar() is None:
            conn.execute(insert(b).values(spki_sha256=spki, reason=KEY_COMPROMISE, blocked_at=now, serial=row.serial))
        rows = conn.execute(select(_c.serial, _c.status)
                            .where(_c.spki_sha256 == spki, _c.serial != row.serial,
                                   _c.state.in_(("pending", "issued")), _c.status.in_(("good", "on_hold")))
                            .order_by(_c.serial))
        return spki, [(str(r[0]), str(r[1])) for r in rows]

    @translated
    def blocked_key(self, public_key_der: bytes) -> tuple[str, datetime, str | None] | None:
        """(reason, blocked at, serial that caused it) if this public key is blocked."""
        b = _blocked_keys
        with self.engine.connect() as conn:
            r = conn.execute(select(b.c.reason, b.c.blocked_at, b.c.serial)
                             .where(b.c.spki_sha256 == spki_sha256(public_key_der))).first()
        return (str(r[0]), utc(r[1]), r[2]) if r is not None else None

    @translated
    def status_of(self, serial: str) -> tuple[int, str, str, datetime | None, str | None] | None:
        """(authority id, state, status, revoked at, reason) — what OCSP needs, nothing more
        (raw path: every OCSP answer that is signed for its request reads it)."""
        row = self.raw.one(_READ_STATUS, {"s": serial.lower()})
        if row is None:
            return None
        return row[0], row[1], row[2], self.raw.moment(row[3]), row[4]

    def counter(self, name: str) -> int:
        """A shared counter's value (read on every OCSP answer and verification: raw path);
        inside ``one_read_per_counter`` the value first read there."""
        seen = _counters_seen.get()
        if seen is not None and name in seen:
            return seen[name]
        row = self.raw.one(_READ_COUNTER, {"name": name})
        value = int(row[0]) if row else 0
        if seen is not None:
            seen[name] = value
        return value

    @staticmethod
    @contextmanager
    def one_read_per_counter() -> Iterator[None]:
        """Within this block (this thread or task only), each counter is read once.

        One verification asks for the status version twice (its signer's OCSP answer and
        the root's CRL, each cached by version); one read makes both as of one moment, and
        saves a round trip per verify on PostgreSQL. Writes are not affected.
        """
        token = _counters_seen.set({})
        try:
            yield
        finally:
            _counters_seen.reset(token)

    @translated
    def history(self, serial: str) -> list[StatusEventRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(_events).where(_events.c.serial == serial.lower()).order_by(_events.c.id))
            return [StatusEventRecord(r.action, r.reason, opt_utc(r.invalidity_date), r.actor, utc(r.at))
                    for r in rows]

    # --- CRLs ---------------------------------------------------------------------

    @translated
    def publish_crl(self, authority_id: int,
                    make: Callable[[int, Iterator[RevokedEntry], datetime, datetime], tuple[bytes, int]],
                    times: Callable[[], tuple[datetime, datetime]]) -> CrlRecord:
        """Take the next CRL number and the entries in one transaction, sign, store.

        The counter update comes first and holds the write lock, so a CRL with a higher
        number always reflects every status change committed before it (RFC 5280 §5.2.3);
        ``times`` (thisUpdate, nextUpdate) is asked only then, so thisUpdate never goes
        backwards as the number goes up.
        """
        with self.engine.begin() as conn:
            number = bump(conn, f"crl_number:{authority_id}")
            this_update, next_update = times()
            der, count = make(number, self._listed(conn, authority_id), this_update, next_update)
            conn.execute(insert(_crls).values(authority_id=authority_id, number=number, this_update=this_update,
                                              next_update=next_update, entries=count, der=der))
            append(conn, action="crl", actor="udun", subject=f"authority {authority_id}",
                   details={"number": number, "entries": count, "next_update": next_update.isoformat(),
                            "crl_sha256": hashlib.sha256(der).hexdigest()}, now=this_update)
        return CrlRecord(authority_id, number, this_update, next_update, count, der)

    def _listed(self, conn: Connection, authority_id: int) -> Iterator[RevokedEntry]:
        """The entries of ``authority_id``'s next CRL, read in ``conn``'s transaction.

        On SQLite straight from the driver's cursor (its rows are text: the ISO time with
        "+00:00" appended is parsed in one C call): Core's result rows and DateTime
        processing were half of a 100,000-entry CRL's time (make bench: crl_build_100k).
        On PostgreSQL through Core, streamed (a server-side cursor for a million rows).
        """
        if not self._postgres:
            cur = conn.connection.cursor()
            raw = self.raw.compiled(_LISTED)
            cur.execute(raw.sql, {**raw.defaults, "authority_id": authority_id})
            parse = datetime.fromisoformat
            while batch := cur.fetchmany(10_000):
                for serial, revoked_at, reason, invalidity in batch:
                    yield RevokedEntry(int(serial, 16), parse(revoked_at + "+00:00"), reason,
                                       parse(invalidity + "+00:00") if invalidity else None)
            return
        rows = conn.execute(_LISTED.execution_options(yield_per=10_000), {"authority_id": authority_id})
        for serial, revoked_at, reason, invalidity in rows:
            yield RevokedEntry(int(serial, 16), revoked_at.astimezone(timezone.utc), reason,
                               invalidity.astimezone(timezone.utc) if invalidity else None)

    @translated
    def latest_crl(self, authority_id: int) -> CrlRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_crls).where(_crls.c.authority_id == authority_id)
                               .order_by(_crls.c.number.desc()).limit(1)).first()
        if row is None:
            return None
        return CrlRecord(row.authority_id, row.number, utc(row.this_update), utc(row.next_update), row.entries,
                         row.der)
