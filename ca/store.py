"""The storage authority: the only code that reads and writes CA tables."""
from __future__ import annotations

import functools
import hashlib
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar, cast
from datetime import datetime, timezone

from asn1crypto import x509
from sqlalchemy import (Column, DateTime, MetaData, String, Table, bindparam, func, select, text,
                        update)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ca import auditlog
from ca.rawdb import RawDb
from ca.db import Authority, CertificateRow, Counter, CrlRow, StatusEvent
from pkicore.errors import ErrorKind, PkiError


def _utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


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


@dataclass(frozen=True)
class RevokedEntry:
    """One CRL entry."""

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


def _opt(value: datetime | None) -> datetime | None:
    return _utc(value) if value is not None else None


def _authority(row: Authority) -> AuthorityRecord:
    return AuthorityRecord(row.id, row.name, row.token_label, bytes.fromhex(row.key_id), row.key_type,
                           row.subject, row.cert_der)


def _cert(row: CertificateRow) -> CertRecord:
    return CertRecord(
        row.serial, row.authority_id, row.state, row.profile, row.subject, row.requester, row.tbs_sha256,
        _utc(row.not_before), _utc(row.not_after), _utc(row.created_at), _opt(row.issued_at), row.der,
        row.status, _opt(row.revoked_at), row.revocation_reason, _opt(row.invalidity_date),
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


# Migration 0005's table and column, which the ORM models (ca.db) do not map.
_meta = MetaData()
_blocked_keys = Table(
    "blocked_keys", _meta,
    Column("spki_sha256", String(64), primary_key=True),
    Column("reason", String(32)),
    Column("blocked_at", DateTime(timezone=True)),
    Column("serial", String(42)),
)
_cert_keys = Table(
    "certificates", _meta,
    Column("serial", String(42), primary_key=True),
    Column("state", String(16)),
    Column("status", String(16)),
    Column("spki_sha256", String(64)),
)


# The authority row a delegated profile's certificates are named like: the renewal of an
# OCSP responder or TSA key (ca.renewal) asks for the subject of the certificate it replaces.
_OWN_AUTHORITY = {"ocsp-responder": "ocsp", "tsa": "tsa"}

KEY_COMPROMISE = "keyCompromise"
_BLOCKED_MESSAGE = "this public key was revoked for key compromise and can never be certified again"


F = TypeVar("F", bound=Callable[..., Any])


def _db(method: F) -> F:
    """Translate database failures at the boundary into PkiError."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except OperationalError as e:
            if "no such table" in str(e.orig) or "does not exist" in str(e.orig):
                raise PkiError(ErrorKind.NOT_INITIALISED, "the database has no CA tables: run `udun ca init`") from e
            raise PkiError(ErrorKind.UNAVAILABLE, "the database is not available") from e
    return wrapper  # type: ignore[return-value]


class Store:
    """Reads and writes authorities and certificates; each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.raw = RawDb(engine)          # the hot paths' statements (ca.rawdb)
        self._authority_names: dict[bytes, _NameKey] = {}
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def _session(self) -> Session:
        return self._sessions()

    @_db
    def add_authorities(self, rows: list[NewAuthority], now: datetime) -> list[AuthorityRecord]:
        """Store several authorities in one transaction: all or none."""
        with self._session() as s, s.begin():
            objs = [Authority(name=r.name, token_label=r.token_label, key_id=r.key_id.hex(), key_type=r.key_type,
                              subject=r.subject, cert_der=r.cert_der, not_after=r.not_after, created_at=now)
                    for r in rows]
            s.add_all(objs)
            try:
                s.flush()
            except IntegrityError as e:
                raise PkiError(ErrorKind.CONFLICT, "the CA is initialised already") from e
            for r in rows:
                auditlog.append(s.connection(), action="key", actor="ca-init", subject=r.name,
                                details=_key_event(r, "CA key and certificate"), now=now)
            return [_authority(o) for o in objs]

    @_db
    def replace_authority(self, row: NewAuthority, now: datetime) -> AuthorityRecord:
        """Store a renewed key/certificate under an existing name (OCSP responder, TSA)."""
        with self._session() as s, s.begin():
            auditlog.append(s.connection(), action="key", actor="udun", subject=row.name,
                            details=_key_event(row, "new key and certificate"), now=now)
            obj = s.scalars(select(Authority).where(Authority.name == row.name)).first()
            if obj is None:
                obj = Authority(name=row.name, created_at=now)
                s.add(obj)
            obj.token_label, obj.key_id, obj.key_type = row.token_label, row.key_id.hex(), row.key_type
            obj.subject, obj.cert_der, obj.not_after = row.subject, row.cert_der, row.not_after
            s.flush()
            return _authority(obj)

    @_db
    def authority(self, name: str) -> AuthorityRecord | None:
        with self._session() as s:
            row = s.scalars(select(Authority).where(Authority.name == name)).first()
            return _authority(row) if row else None

    # Issuance writes go straight to the driver (ca.rawdb): SQLAlchemy's per-statement cost
    # is as large as the token signature on this path (make bench: issuance). Parameter
    # names are letters and "_" only: ca.rawdb's conversion for psycopg takes no digits.
    _certs = cast(Table, CertificateRow.__table__)
    _INSERT_INTENT = (
        "INSERT INTO certificates (serial, authority_id, state, profile, subject, requester, tbs_sha256, "
        "not_before, not_after, created_at, status, spki_sha256) VALUES (:serial, :authority_id, 'pending', "
        ":profile, :subject, :requester, :tbs_hash, :not_before, :not_after, :created_at, 'good', :spki)")
    _MARK_ISSUED = ("UPDATE certificates SET state = 'issued', der = :der, cert_sha256 = :cert_hash, "
                    "issued_at = :issued_at WHERE serial = :serial AND state = 'pending'")
    _BLOCKED = "SELECT 1 FROM blocked_keys WHERE spki_sha256 = :spki"
    # Another live certificate (being issued or issued: a failed one was never signed) on this
    # key under another subject. As two ranges, below and above the subject, so that both are
    # short reads of the (spki_sha256, subject) index (migration 0008) however many
    # certificates the key has under this subject; "<>" would read them all.
    _SAME_KEY_OTHER_SUBJECT = (
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM certificates WHERE spki_sha256 = :spki AND subject < :subject "
        "AND state IN ('pending', 'issued')) OR EXISTS (SELECT 1 FROM certificates WHERE spki_sha256 = :spki "
        "AND subject > :subject AND state IN ('pending', 'issued'))")
    _AUTHORITY_CERTS = "SELECT name, cert_der FROM authorities"
    _KEY_LOCK = "SELECT pg_advisory_xact_lock(:lock)"

    def _lock_key(self, cur: Any, spki: str) -> None:
        """PostgreSQL: serialise every transaction about one public key (an intent, a
        keyCompromise revocation) until it ends. SQLite needs nothing: the first write of
        each of them takes the one database write lock, and their checks come after it."""
        if self.engine.dialect.name == "postgresql":
            cur.execute(self.raw.sql(self._KEY_LOCK), {"lock": _lock_id(spki)})

    def _authority_keys(self, cur: Any) -> list[tuple[str, _NameKey]]:
        """(name, subject key) of every authority row: root, issuing CA, OCSP responder, TSA."""
        cur.execute(self._AUTHORITY_CERTS)
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

    def _check_impersonation(self, cur: Any, profile: str, subject_der: bytes) -> None:
        """Refuse a subject named like one of this CA's own certificates (whole DN or CN)."""
        wanted = _subject_key(subject_der)
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
        try:
            with db.transaction() as cur:
                cur.execute(db.sql(self._INSERT_INTENT), {
                    "serial": serial, "authority_id": authority_id, "profile": profile, "subject": subject,
                    "requester": requester, "tbs_hash": tbs_sha256, "not_before": db.when(not_before),
                    "not_after": db.when(not_after), "created_at": db.when(now), "spki": spki})
                self._lock_key(cur, spki)
                cur.execute(db.sql(self._BLOCKED), {"spki": spki})
                if cur.fetchone() is not None:
                    raise PkiError(ErrorKind.POLICY, _BLOCKED_MESSAGE)
                cur.execute(db.sql(self._SAME_KEY_OTHER_SUBJECT), {"spki": spki, "subject": subject})
                if cur.fetchone() is not None:
                    raise PkiError(ErrorKind.POLICY, "this public key is certified for another subject already: "
                                                     "a key may be certified for one subject only")
                self._check_impersonation(cur, profile, subject_der)
        except db.dbapi.IntegrityError:
            return False
        return True

    def record_issued(self, serial: str, der: bytes, cert_sha256: str, now: datetime, *,
                      profile: str = "client", subject: str = "", requester: str = "cli") -> None:
        """Phase two: the signed certificate, and its audit entry."""
        db = self.raw
        with db.transaction() as cur:
            cur.execute(db.sql(self._MARK_ISSUED), {"serial": serial, "der": der, "cert_hash": cert_sha256,
                                                    "issued_at": db.when(now)})
            if cur.rowcount != 1:
                raise PkiError(ErrorKind.INTERNAL, f"serial {serial} was not pending")
            auditlog.append_raw(db, cur, action="issue", actor=requester, subject=serial,
                                details={"profile": profile, "subject": subject, "certificate_sha256": cert_sha256},
                                now=now)

    @_db
    def record_failed(self, serial: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(self._certs).where(self._certs.c.serial == serial, self._certs.c.state == "pending")
                         .values(state="failed"))

    @_db
    def abandon_pending(self, created_before: datetime, reason: str, actor: str, now: datetime) -> list[str]:
        """Intents still pending from before ``created_before`` (a crash between the intent
        and storing the certificate) become ``failed`` and are listed as revoked: nobody was
        given such a certificate, but the token may have signed it, so a CRL names the serial
        (reason unspecified) and OCSP keeps answering unknown. One transaction, audited."""
        with self._session() as s, s.begin():
            self._bump(s, "status_version")
            rows = s.scalars(select(CertificateRow).where(CertificateRow.state == "pending",
                                                          CertificateRow.created_at < created_before)).all()
            for row in rows:
                row.state, row.status = "failed", "revoked"
                row.revoked_at, row.revocation_reason = now.replace(microsecond=0), "unspecified"
                s.add(StatusEvent(serial=row.serial, action="abandon", reason="unspecified", invalidity_date=None,
                                  actor=actor, at=now))
                auditlog.append(s.connection(), action="abandon", actor=actor, subject=row.serial,
                                details={"reason": reason, "profile": row.profile, "subject": row.subject,
                                         "tbs_sha256": row.tbs_sha256,
                                         "created_at": _utc(row.created_at).isoformat()}, now=now)
            return [r.serial for r in rows]

    @_db
    def certificate(self, serial: str) -> CertRecord | None:
        with self._session() as s:
            row = s.get(CertificateRow, serial.lower())
            return _cert(row) if row else None

    @_db
    def certificates(self, limit: int = 100, offset: int = 0) -> list[CertRecord]:
        with self._session() as s:
            rows = s.scalars(select(CertificateRow).order_by(CertificateRow.created_at.desc(),
                                                             CertificateRow.serial)
                             .limit(limit).offset(offset))
            return [_cert(r) for r in rows]

    @_db
    def count(self) -> int:
        with self._session() as s:
            return int(s.scalar(select(func.count()).select_from(CertificateRow)) or 0)

    # --- status -------------------------------------------------------------------

    @_db
    def change_status(self, serial: str, *, allowed_from: tuple[str, ...], status: str, action: str,
                      reason: str | None, revoked_at: datetime | None, invalidity_date: datetime | None,
                      actor: str, now: datetime) -> CertRecord:
        """Move a certificate between statuses in one transaction, with its history row.

        The UPDATE names the statuses it may start from, so two operators acting at once
        cannot both succeed on a state that only allows one of them. A revocation for
        keyCompromise also blocks the public key for ever and revokes, in the same
        transaction, every other certificate on that key that is not revoked yet.
        """
        with self._session() as s, s.begin():
            # The counter first: its UPDATE takes the write lock (pysqlite begins at the
            # first DML), so the status read next is the one this change replaces.
            self._bump(s, "status_version")
            row = s.get(CertificateRow, serial.lower())
            if row is None or row.state != "issued":
                raise PkiError(ErrorKind.NOT_FOUND, f"no issued certificate with serial {serial}")
            done = s.execute(
                update(CertificateRow)
                .where(CertificateRow.serial == row.serial, CertificateRow.status.in_(allowed_from))
                .values(status=status, revoked_at=revoked_at, revocation_reason=reason,
                        invalidity_date=invalidity_date)
                .execution_options(synchronize_session=False)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                current = s.scalar(select(CertificateRow.status).where(CertificateRow.serial == row.serial))
                raise PkiError(ErrorKind.CONFLICT, f"certificate {row.serial} is {current}: cannot {action} it")
            details: dict[str, Any] = {
                "reason": reason, "from": row.status, "to": status,
                "invalidity_date": invalidity_date.isoformat() if invalidity_date else None}
            same_key: list[tuple[str, str]] = []
            if status == "revoked" and reason == KEY_COMPROMISE:
                spki, same_key = self._block_key(s, row, now)
                details["blocked_key_spki_sha256"] = spki
                details["same_key_revoked"] = [sib for sib, _ in same_key]
            s.add(StatusEvent(serial=row.serial, action=action, reason=reason, invalidity_date=invalidity_date,
                              actor=actor, at=now))
            auditlog.append(s.connection(), action=action, actor=actor, subject=row.serial, details=details,
                            now=now)
            if same_key:
                moved = s.execute(
                    update(CertificateRow)
                    .where(CertificateRow.serial.in_([sib for sib, _ in same_key]),
                           CertificateRow.status.in_(("good", "on_hold")))
                    .values(status="revoked", revoked_at=revoked_at, revocation_reason=reason,
                            invalidity_date=invalidity_date)
                    .execution_options(synchronize_session=False)
                )
                if moved.rowcount != len(same_key):  # type: ignore[attr-defined]
                    raise PkiError(ErrorKind.CONFLICT, "a certificate on the same key changed meanwhile: try again")
                for sib, was in same_key:
                    s.add(StatusEvent(serial=sib, action=action, reason=reason, invalidity_date=invalidity_date,
                                      actor=actor, at=now))
                    auditlog.append(s.connection(), action=action, actor=actor, subject=sib, details={
                        "reason": reason, "from": was, "to": status, "invalidity_date": details["invalidity_date"],
                        "same_key_as": row.serial, "blocked_key_spki_sha256": details["blocked_key_spki_sha256"],
                    }, now=now)
        rec = self.certificate(serial)
        assert rec is not None
        return rec

    _KEY_LOCK_SQL = text(_KEY_LOCK)

    def _block_key(self, s: Session, row: CertificateRow, now: datetime) -> tuple[str, list[tuple[str, str]]]:
        """Inside change_status: block ``row``'s public key; (serial, status) of the other
        certificates on it not revoked yet, issued or being issued (those will be signed
        already revoked; a failed one was never signed)."""
        c = _cert_keys
        spki = s.scalar(select(c.c.spki_sha256).where(c.c.serial == row.serial))
        if spki is None:            # a row migration 0005 could not read
            if row.der is None:
                raise PkiError(ErrorKind.INTERNAL, f"certificate {row.serial} has no DER")
            spki = spki_sha256(x509.Certificate.load(row.der).public_key.dump())
        if self.engine.dialect.name == "postgresql":    # as in record_intent
            s.execute(self._KEY_LOCK_SQL, {"lock": _lock_id(spki)})
        if s.scalar(select(_blocked_keys.c.spki_sha256).where(_blocked_keys.c.spki_sha256 == spki)) is None:
            s.execute(_blocked_keys.insert().values(spki_sha256=spki, reason=KEY_COMPROMISE, blocked_at=now,
                                                    serial=row.serial))
        rows = s.execute(select(c.c.serial, c.c.status)
                         .where(c.c.spki_sha256 == spki, c.c.serial != row.serial,
                                c.c.state.in_(("pending", "issued")), c.c.status.in_(("good", "on_hold")))
                         .order_by(c.c.serial))
        return spki, [(str(r[0]), str(r[1])) for r in rows]

    @_db
    def blocked_key(self, public_key_der: bytes) -> tuple[str, datetime, str | None] | None:
        """(reason, blocked at, serial that caused it) if this public key is blocked."""
        b = _blocked_keys
        with self.engine.connect() as conn:
            r = conn.execute(select(b.c.reason, b.c.blocked_at, b.c.serial)
                             .where(b.c.spki_sha256 == spki_sha256(public_key_der))).first()
        return (str(r[0]), _utc(r[1]), r[2]) if r is not None else None

    @staticmethod
    def _bump(s: Session, name: str) -> int:
        """Increment a shared counter inside the caller's transaction; returns the new value."""
        value = s.execute(update(Counter).where(Counter.name == name).values(value=Counter.value + 1)
                          .returning(Counter.value)).scalar()
        if value is None:
            s.add(Counter(name=name, value=1))
            s.flush()
            value = 1
        return int(value)

    _read_counter = select(Counter.value).where(Counter.name == bindparam("n"))
    _read_status = select(_certs.c.authority_id, _certs.c.state, _certs.c.status, _certs.c.revoked_at,
                          _certs.c.revocation_reason).where(_certs.c.serial == bindparam("s"))

    @_db
    def status_of(self, serial: str) -> tuple[int, str, str, datetime | None, str | None] | None:
        """(authority id, state, status, revoked at, reason) — what OCSP needs, nothing more."""
        with self.engine.connect() as conn:
            row = conn.execute(self._read_status, {"s": serial.lower()}).first()
        if row is None:
            return None
        return row[0], row[1], row[2], _opt(row[3]), row[4]

    def counter(self, name: str) -> int:
        """A shared counter's value (read on every OCSP answer and verification: ca.rawdb)."""
        row = self.raw.one("SELECT value FROM counters WHERE name = :n", {"n": name})
        return int(row[0]) if row else 0

    @_db
    def history(self, serial: str) -> list[StatusEventRecord]:
        with self._session() as s:
            rows = s.scalars(select(StatusEvent).where(StatusEvent.serial == serial.lower())
                             .order_by(StatusEvent.id))
            return [StatusEventRecord(r.action, r.reason, _opt(r.invalidity_date), r.actor, _utc(r.at))
                    for r in rows]

    # --- CRLs ---------------------------------------------------------------------

    @_db
    def publish_crl(self, authority_id: int, make: Callable[[int, Iterator[RevokedEntry]], tuple[bytes, int]],
                    this_update: datetime, next_update: datetime) -> CrlRecord:
        """Take the next CRL number and the entries in one transaction, sign, store.

        The counter update comes first and holds the write lock, so a CRL with a higher
        number always reflects every status change committed before it (RFC 5280 §5.2.3).
        """
        with self._session() as s, s.begin():
            number = self._bump(s, f"crl_number:{authority_id}")
            c = self._certs
            rows = s.execute(
                select(c.c.serial, c.c.revoked_at, c.c.revocation_reason, c.c.invalidity_date)
                .where(c.c.authority_id == authority_id, c.c.status.in_(("revoked", "on_hold")))
                .execution_options(yield_per=10_000)
            )
            entries = (RevokedEntry(int(r[0], 16), _utc(r[1]), r[2], _opt(r[3])) for r in rows)
            der, count = make(number, entries)
            s.add(CrlRow(authority_id=authority_id, number=number, this_update=this_update,
                         next_update=next_update, entries=count, der=der))
            auditlog.append(s.connection(), action="crl", actor="udun", subject=f"authority {authority_id}",
                            details={"number": number, "entries": count, "next_update": next_update.isoformat(),
                                     "crl_sha256": hashlib.sha256(der).hexdigest()}, now=this_update)
        return CrlRecord(authority_id, number, this_update, next_update, count, der)

    @_db
    def latest_crl(self, authority_id: int) -> CrlRecord | None:
        with self._session() as s:
            row = s.scalars(select(CrlRow).where(CrlRow.authority_id == authority_id)
                            .order_by(CrlRow.number.desc()).limit(1)).first()
            if row is None:
                return None
            return CrlRecord(row.authority_id, row.number, _utc(row.this_update), _utc(row.next_update),
                             row.entries, row.der)
