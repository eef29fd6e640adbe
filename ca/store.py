"""The storage authority: the only code that reads and writes CA tables."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, TypeVar, cast
from datetime import datetime, timezone

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ca.db import Authority, CertificateRow
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


def _authority(row: Authority) -> AuthorityRecord:
    return AuthorityRecord(row.id, row.name, row.token_label, bytes.fromhex(row.key_id), row.key_type,
                           row.subject, row.cert_der)


def _cert(row: CertificateRow) -> CertRecord:
    return CertRecord(
        row.serial, row.authority_id, row.state, row.profile, row.subject, row.requester, row.tbs_sha256,
        _utc(row.not_before), _utc(row.not_after), _utc(row.created_at),
        _utc(row.issued_at) if row.issued_at else None, row.der,
    )


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
            raise PkiError(ErrorKind.INTERNAL, "the database is not available") from e
    return wrapper  # type: ignore[return-value]


class Store:
    """Reads and writes authorities and certificates; each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
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
            return [_authority(o) for o in objs]

    @_db
    def authority(self, name: str) -> AuthorityRecord | None:
        with self._session() as s:
            row = s.scalars(select(Authority).where(Authority.name == name)).first()
            return _authority(row) if row else None

    # Issuance writes go through SQLAlchemy Core: the ORM's unit of work costs more than
    # the token signature on this path (make bench: issuance).
    _certs = cast(Table, CertificateRow.__table__)
    _insert_intent = insert(_certs)
    _mark_issued = (update(_certs)
                    .where(_certs.c.serial == bindparam("b_serial"), _certs.c.state == "pending")
                    .values(state="issued", der=bindparam("der"), cert_sha256=bindparam("cert_sha256"),
                            issued_at=bindparam("issued_at")))

    @_db
    def record_intent(self, *, serial: str, authority_id: int, profile: str, subject: str, requester: str,
                      tbs_sha256: str, not_before: datetime, not_after: datetime, now: datetime) -> bool:
        """Phase one: remember the serial and TBS hash. False if the serial was taken."""
        try:
            with self.engine.begin() as conn:
                conn.execute(self._insert_intent, {
                    "serial": serial, "authority_id": authority_id, "state": "pending", "profile": profile,
                    "subject": subject, "requester": requester, "tbs_sha256": tbs_sha256,
                    "not_before": not_before, "not_after": not_after, "created_at": now,
                })
        except IntegrityError:
            return False
        return True

    @_db
    def record_issued(self, serial: str, der: bytes, cert_sha256: str, now: datetime) -> None:
        """Phase two: the signed certificate."""
        with self.engine.begin() as conn:
            done = conn.execute(self._mark_issued, {"b_serial": serial, "der": der, "cert_sha256": cert_sha256,
                                                    "issued_at": now})
            if done.rowcount != 1:
                raise PkiError(ErrorKind.INTERNAL, f"serial {serial} was not pending")

    @_db
    def record_failed(self, serial: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(self._certs).where(self._certs.c.serial == serial, self._certs.c.state == "pending")
                         .values(state="failed"))

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
