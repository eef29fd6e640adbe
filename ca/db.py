"""Database schema (SQLAlchemy 2) and engine set-up; migrations live in ca/migrations."""
from __future__ import annotations

import os
from datetime import datetime
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (BigInteger, DateTime, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint,
                        create_engine, event)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from config.settings import Settings
from pkicore.errors import ErrorKind, PkiError
from config.locks import file_lock

MIGRATIONS = Path(__file__).parent / "migrations"


class Base(DeclarativeBase):
    pass


class Authority(Base):
    """A CA key and certificate: the root and the issuing CA."""

    __tablename__ = "authorities"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)          # "root" | "issuing"
    token_label: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64))                     # CKA_ID, hex
    key_type: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(Text)
    cert_der: Mapped[bytes] = mapped_column(LargeBinary)
    not_after: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CertificateRow(Base):
    """One issued (or being issued) certificate.

    Two-phase issuance: the row is written as "pending" with the TBS hash before the
    token signs, then completed with the DER. A crash in between leaves a known serial.
    """

    __tablename__ = "certificates"
    serial: Mapped[str] = mapped_column(String(42), primary_key=True)   # lowercase hex
    authority_id: Mapped[int] = mapped_column(ForeignKey("authorities.id"))
    state: Mapped[str] = mapped_column(String(16), index=True)          # pending | issued | failed
    profile: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(Text)
    requester: Mapped[str] = mapped_column(String(128))
    tbs_sha256: Mapped[str] = mapped_column(String(64))
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    not_after: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    der: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    cert_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # Status (RFC 5280 §5.3.1): good | on_hold | revoked. A hold is recorded like a
    # revocation with reason certificateHold, and undone by a release.
    status: Mapped[str] = mapped_column(String(16), server_default="good")
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    invalidity_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class StatusEvent(Base):
    """Who changed a certificate's status, when, and how."""

    __tablename__ = "status_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    serial: Mapped[str] = mapped_column(ForeignKey("certificates.serial"), index=True)
    action: Mapped[str] = mapped_column(String(16))               # revoke | hold | release
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    invalidity_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Counter(Base):
    """Monotonic counters shared by every process (CRL numbers, the status version)."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class CrlRow(Base):
    """Every CRL published, newest by number."""

    __tablename__ = "crls"
    __table_args__ = (UniqueConstraint("authority_id", "number", name="uq_crls_authority_number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    authority_id: Mapped[int] = mapped_column(ForeignKey("authorities.id"))
    number: Mapped[int] = mapped_column(BigInteger)
    this_update: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_update: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    entries: Mapped[int] = mapped_column(Integer)
    der: Mapped[bytes] = mapped_column(LargeBinary)



class EvidenceRow(Base):
    """What a bank needs in a dispute: the signed payment and everything that proved it."""

    __tablename__ = "evidence"
    __table_args__ = (UniqueConstraint("signer_cert_sha256", "tx_id", name="uq_evidence_signer_tx"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    signer_cert_sha256: Mapped[str] = mapped_column(String(64))
    signer_serial: Mapped[str] = mapped_column(String(42))
    tx_id: Mapped[str] = mapped_column(String(128))
    content: Mapped[bytes] = mapped_column(LargeBinary)          # the canonical payment bytes
    cms: Mapped[bytes] = mapped_column(LargeBinary)              # as received
    stamped_cms: Mapped[bytes] = mapped_column(LargeBinary)      # CAdES-T: with the signature time-stamp
    time_stamp: Mapped[bytes] = mapped_column(LargeBinary)       # the RFC 3161 token alone
    chain: Mapped[bytes] = mapped_column(LargeBinary)            # PEM, signer first
    revocation_kind: Mapped[str] = mapped_column(String(8))      # ocsp | crl
    revocation: Mapped[bytes] = mapped_column(LargeBinary)
    report: Mapped[str] = mapped_column(Text)                    # JSON
    # the CA certificates' revocation data, issuing CA first: JSON [[kind, base64 DER], ...]
    # (NULL in records stored before migration 0004)
    ca_revocation: Mapped[str | None] = mapped_column(Text, nullable=True)


class ChallengeRow(Base):
    """A single-use challenge a bank asked for, to be carried inside a signed payment."""

    __tablename__ = "challenges"
    value: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    evidence_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class AuditRow(Base):
    """One audit log entry; ``hash`` covers every field and ``prev_hash`` (ca.auditlog)."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(32))      # RFC 3339 text: hashed exactly as stored
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(String(256))
    details: Mapped[str] = mapped_column(Text)       # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpointRow(Base):
    """A signed, time-stamped statement of the log's head at some sequence number."""

    __tablename__ = "audit_checkpoints"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cms: Mapped[bytes] = mapped_column(LargeBinary)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")     # readers never block the writer
    cur.execute("PRAGMA synchronous=NORMAL")   # durable at checkpoints; safe with WAL
    cur.execute("PRAGMA busy_timeout=10000")   # several processes share one file
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA wal_autocheckpoint=10000")  # fewer, larger checkpoints (issuance rate)
    cur.close()


def _private_home(home: Path) -> None:
    """UDUN_HOME is udun's alone (0700): it holds the database, token files and PIN files."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        if home.stat().st_mode & 0o077:
            home.chmod(0o700)
    except OSError:
        pass                                  # a home we do not own: left as it is


def make_engine(settings: Settings) -> Engine:
    """An engine for UDUN_DATABASE_URL (SQLite under UDUN_HOME by default)."""
    url = settings.database_url
    if url.startswith("sqlite"):
        _private_home(settings.home)
        path = make_url(url).database
        if path and path != ":memory:":
            # Payments (names, accounts) and the audit log: readable by udun's user only.
            # SQLite gives its -wal and -shm files the main file's mode.
            try:
                os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
                os.chmod(path, 0o600)
            except OSError:
                pass                          # not ours to create here: the engine will say why
    try:
        engine = create_engine(url, future=True)
    except Exception as e:
        raise PkiError(ErrorKind.BAD_INPUT, f"UDUN_DATABASE_URL is not usable: {type(e).__name__}") from e
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def migrate(engine: Engine, lock: Path | None = None) -> None:
    """Bring the schema to the newest Alembic revision.

    Several processes may start at once on a fresh SQLite file; a file lock serialises
    them (with PostgreSQL, run migrations from one place: `udun ca init` or a deploy step).
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with file_lock(lock) if lock else nullcontext():
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
    except OperationalError as e:
        raise PkiError(ErrorKind.BAD_INPUT, f"cannot open the database ({_reason(e)}); check UDUN_DATABASE_URL") from e


def _reason(e: OperationalError) -> str:
    """The driver's first line, without SQL or parameters."""
    return str(e.orig).splitlines()[0][:200] if e.orig else type(e).__name__
