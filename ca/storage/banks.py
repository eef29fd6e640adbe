"""Storage for banks and their API keys (migration 0010).

Each change is one transaction with its audit entry: a key that exists was logged, by the
identity that made it. Reads return frozen records; the slow-hash check is ca.banks'.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from ca.storage.audit import append
from ca.storage.errors import db_errors, translated
from ca.storage.schema import bank_certs as _certs
from ca.storage.schema import bank_keys as _keys
from ca.storage.schema import banks as _banks
from ca.storage.schema import opt_utc, utc
from ca.storage.store import Store
from pkicore.clock import rfc3339
from pkicore.errors import ErrorKind, PkiError


@dataclass(frozen=True)
class BankRecord:
    id: int
    name: str
    display_name: str
    created_at: datetime
    disabled_at: datetime | None


@dataclass(frozen=True)
class BankKeyRecord:
    id: str
    bank_id: int
    bank: str
    hash: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    replaced_by: str | None
    bank_disabled_at: datetime | None


@dataclass(frozen=True)
class BankCertRecord:
    sha256: str
    bank_id: int
    bank: str
    subject: str
    scopes: tuple[str, ...]
    not_after: datetime
    created_at: datetime
    removed_at: datetime | None
    bank_disabled_at: datetime | None


_b = _banks.c
_k = _keys.c
_c = _certs.c
_CERTS = select(_c.cert_sha256, _c.bank_id, _b.name, _c.subject, _c.scopes, _c.not_after, _c.created_at,
                _c.removed_at, _b.disabled_at).join(_banks, _banks.c.id == _c.bank_id)
_KEY_COLUMNS = (_k.id, _k.bank_id, _b.name, _k.hash, _k.scopes, _k.created_at, _k.expires_at, _k.revoked_at,
                _k.replaced_by, _b.disabled_at)
_KEYS = select(*_KEY_COLUMNS).join(_banks, _banks.c.id == _k.bank_id)


def _bank(row: Any) -> BankRecord:
    return BankRecord(row.id, row.name, row.display_name, utc(row.created_at), opt_utc(row.disabled_at))


def _key(row: Any) -> BankKeyRecord:
    return BankKeyRecord(row[0], row[1], row[2], row[3], tuple(row[4].split()), utc(row[5]), opt_utc(row[6]),
                         opt_utc(row[7]), row[8], opt_utc(row[9]))


class BankStore:
    """Banks and bank keys: add, read, disable, revoke."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    @staticmethod
    def _bank_in(conn: Connection, name: str) -> BankRecord:
        row = conn.execute(select(_banks).where(_b.name == name)).first()
        if row is None:
            raise PkiError(ErrorKind.NOT_FOUND, f"no bank {name!r} (udun bank list)")
        return _bank(row)

    def add_bank(self, name: str, display_name: str, now: datetime, actor: str) -> BankRecord:
        with db_errors(conflict=f"a bank named {name!r} exists already"), self.engine.begin() as conn:
            conn.execute(insert(_banks).values(name=name, display_name=display_name, created_at=now))
            append(conn, action="bank-add", actor=actor, subject=f"bank/{name}",
                   details={"display_name": display_name}, now=now)
            return self._bank_in(conn, name)

    @translated
    def bank(self, name: str) -> BankRecord:
        with self.engine.connect() as conn:
            return self._bank_in(conn, name)

    @translated
    def banks(self) -> list[BankRecord]:
        with self.engine.connect() as conn:
            return [_bank(r) for r in conn.execute(select(_banks).order_by(_b.name))]

    @translated
    def set_disabled(self, name: str, disabled: bool, now: datetime, actor: str) -> BankRecord:
        """Disable (every key of the bank refused at once) or enable again."""
        with self.engine.begin() as conn:
            bank = self._bank_in(conn, name)
            already = PkiError(ErrorKind.CONFLICT, f"bank {name!r} is {'disabled' if disabled else 'enabled'} already")
            if (bank.disabled_at is not None) == disabled:
                raise already
            done = conn.execute(update(_banks).where(
                _b.id == bank.id, _b.disabled_at.is_(None) if disabled else _b.disabled_at.is_not(None))
                .values(disabled_at=now if disabled else None))
            if done.rowcount != 1:                 # a concurrent call did it first
                raise already
            append(conn, action="bank-disable" if disabled else "bank-enable", actor=actor, subject=f"bank/{name}",
                   details={}, now=now)
            return self._bank_in(conn, name)

    def add_key(self, bank_name: str, row: dict[str, Any], now: datetime, actor: str, *,
                replaces: str | None = None, old_expires_at: datetime | None = None) -> BankKeyRecord:
        """Store a new key of ``bank_name`` (``row``: id, hash, scopes, expires_at); with
        ``replaces``, that key of the same bank ends at ``old_expires_at`` (a rotation)."""
        with db_errors(conflict="the key id was taken; try again"), self.engine.begin() as conn:
            bank = self._bank_in(conn, bank_name)
            conn.execute(insert(_keys).values(bank_id=bank.id, created_at=now, **row))
            details: dict[str, Any] = {"scopes": row["scopes"], "expires_at": _text(row["expires_at"])}
            if replaces is not None:
                done = conn.execute(update(_keys).where(_k.id == replaces, _k.bank_id == bank.id,
                                                        _k.revoked_at.is_(None), _k.replaced_by.is_(None))
                                    .values(expires_at=old_expires_at, replaced_by=row["id"]))
                if done.rowcount != 1:
                    raise PkiError(ErrorKind.CONFLICT, f"key {replaces} was revoked or rotated meanwhile; "
                                                       "nothing rotated")
                details.update(replaces=replaces, old_expires_at=_text(old_expires_at))
            append(conn, action="bank-key-rotate" if replaces else "bank-key-add", actor=actor,
                   subject=f"bank/{bank_name}/key/{row['id']}", details=details, now=now)
            return _key(conn.execute(_KEYS.where(_k.id == row["id"])).one())

    @translated
    def key(self, key_id: str) -> BankKeyRecord | None:
        """One key with its bank's name and state (every authenticated request reads it)."""
        with self.engine.connect() as conn:
            row = conn.execute(_KEYS.where(_k.id == key_id)).first()
        return _key(row) if row is not None else None

    @translated
    def keys(self, bank_name: str) -> list[BankKeyRecord]:
        with self.engine.connect() as conn:
            bank = self._bank_in(conn, bank_name)
            return [_key(r) for r in conn.execute(_KEYS.where(_k.bank_id == bank.id).order_by(_k.created_at, _k.id))]

    @translated
    def revoke_key(self, key_id: str, now: datetime, actor: str) -> BankKeyRecord:
        with self.engine.begin() as conn:
            row = conn.execute(_KEYS.where(_k.id == key_id)).first()
            if row is None:
                raise PkiError(ErrorKind.NOT_FOUND, f"no bank key {key_id}")
            done = conn.execute(update(_keys).where(_k.id == key_id, _k.revoked_at.is_(None)).values(revoked_at=now))
            if done.rowcount != 1:                 # revoked before, or by a concurrent call
                raise PkiError(ErrorKind.CONFLICT, f"key {key_id} is revoked already")
            append(conn, action="bank-key-revoke", actor=actor, subject=f"bank/{row[2]}/key/{key_id}",
                   details={}, now=now)
            return _key(conn.execute(_KEYS.where(_k.id == key_id)).one())


def _cert(row: Any) -> BankCertRecord:
    return BankCertRecord(row[0], row[1], row[2], row[3], tuple(row[4].split()), utc(row[5]), utc(row[6]),
                          opt_utc(row[7]), opt_utc(row[8]))


class BankCertStore:
    """Banks' TLS client certificates: add, read, remove (each change with its audit entry)."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    def add(self, bank_name: str, row: dict[str, Any], now: datetime, actor: str) -> BankCertRecord:
        """``row``: cert_sha256, subject, scopes, not_after."""
        with db_errors(conflict="this certificate is registered already (udun bank cert list)"), \
                self.engine.begin() as conn:
            bank = BankStore._bank_in(conn, bank_name)
            conn.execute(insert(_certs).values(bank_id=bank.id, created_at=now, **row))
            append(conn, action="bank-cert-add", actor=actor, subject=f"bank/{bank_name}/cert/{row['cert_sha256']}",
                   details={"scopes": row["scopes"], "subject": row["subject"],
                            "not_after": _text(row["not_after"])}, now=now)
            return _cert(conn.execute(_CERTS.where(_c.cert_sha256 == row["cert_sha256"])).one())

    @translated
    def get(self, sha256: str) -> BankCertRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(_CERTS.where(_c.cert_sha256 == sha256)).first()
        return _cert(row) if row is not None else None

    @translated
    def of_bank(self, bank_name: str) -> list[BankCertRecord]:
        with self.engine.connect() as conn:
            bank = BankStore._bank_in(conn, bank_name)
            return [_cert(r) for r in conn.execute(_CERTS.where(_c.bank_id == bank.id).order_by(_c.created_at))]

    @translated
    def remove(self, sha256: str, now: datetime, actor: str) -> BankCertRecord:
        with self.engine.begin() as conn:
            row = conn.execute(_CERTS.where(_c.cert_sha256 == sha256)).first()
            if row is None:
                raise PkiError(ErrorKind.NOT_FOUND, f"no bank certificate {sha256}")
            done = conn.execute(update(_certs).where(_c.cert_sha256 == sha256, _c.removed_at.is_(None))
                                .values(removed_at=now))
            if done.rowcount != 1:
                raise PkiError(ErrorKind.CONFLICT, f"certificate {sha256} was removed already")
            append(conn, action="bank-cert-remove", actor=actor, subject=f"bank/{row[2]}/cert/{sha256}",
                   details={}, now=now)
            return _cert(conn.execute(_CERTS.where(_c.cert_sha256 == sha256)).one())


def _text(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment is not None else None
