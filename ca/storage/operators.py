"""Storage for operators, their credentials, login challenges and sessions (migration 0011).

Each change is one transaction with its audit entry. The rule that there is always an
admin who can log in is checked inside the transaction that would break it, with the admin
rows locked (PostgreSQL: FOR UPDATE; SQLite: one writer at a time), so two concurrent
removals of the last two admins cannot both pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from ca.storage.audit import append
from ca.storage.errors import db_errors, translated
from ca.storage.schema import certificates as _certificates
from ca.storage.schema import login_challenges as _ch
from ca.storage.schema import opt_utc, utc
from ca.storage.schema import operator_certs as _certs
from ca.storage.schema import operator_sessions as _sessions
from ca.storage.schema import operator_tokens as _tokens
from ca.storage.schema import operators as _ops
from ca.storage.store import Store
from pkicore.errors import ErrorKind, PkiError

ADMIN = "admin"


@dataclass(frozen=True)
class OperatorRecord:
    id: int
    name: str
    role: str
    created_at: datetime
    disabled_at: datetime | None
    created_by: str = ""


@dataclass(frozen=True)
class OperatorTokenRecord:
    id: str
    operator: OperatorRecord
    hash: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    created_by: str = ""


@dataclass(frozen=True)
class OperatorCertRecord:
    serial: str
    operator: OperatorRecord
    created_at: datetime
    removed_at: datetime | None
    created_by: str = ""


@dataclass(frozen=True)
class SessionRecord:
    id: str
    operator: OperatorRecord
    secret_sha256: str
    cert_serial: str | None
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None


_o = _ops.c
_t = _tokens.c
_c = _certs.c
_s = _sessions.c
_x = _certificates.c
_OP = (_o.id, _o.name, _o.role, _o.created_at, _o.disabled_at, _o.created_by)


def _operator(row: Any, at: int = 0) -> OperatorRecord:
    return OperatorRecord(row[at], row[at + 1], row[at + 2], utc(row[at + 3]), opt_utc(row[at + 4]), row[at + 5])


def _token(row: Any) -> OperatorTokenRecord:
    return OperatorTokenRecord(row[0], _operator(row, 6), row[1], utc(row[2]), opt_utc(row[3]), opt_utc(row[4]),
                               row[5])


def _cert(row: Any) -> OperatorCertRecord:
    return OperatorCertRecord(row[0], _operator(row, 4), utc(row[1]), opt_utc(row[2]), row[3])


def _session(row: Any) -> SessionRecord:
    return SessionRecord(row[0], _operator(row, 6), row[1], row[2], utc(row[3]), utc(row[4]), opt_utc(row[5]))


_TOKENS = select(_t.id, _t.hash, _t.created_at, _t.expires_at, _t.revoked_at, _t.created_by,
                 *_OP).join(_ops, _o.id == _t.operator_id)
_CERTS = select(_c.serial, _c.created_at, _c.removed_at, _c.created_by, *_OP).join(_ops, _o.id == _c.operator_id)
_SESSIONS = select(_s.id, _s.secret_sha256, _s.cert_serial, _s.created_at, _s.expires_at, _s.ended_at,
                   *_OP).join(_ops, _o.id == _s.operator_id)


def _usable_admin_credentials(conn: Connection, now: datetime, except_serial: str | None = None) -> int:
    """Live tokens, and registered certificates good now, of enabled admins (``except_serial``:
    as if that certificate were held or revoked)."""
    admins = select(_o.id).where(_o.role == ADMIN, _o.disabled_at.is_(None))
    tokens = conn.execute(select(func.count()).select_from(_tokens).where(
        _t.operator_id.in_(admins), _t.revoked_at.is_(None),
        or_(_t.expires_at.is_(None), _t.expires_at > now))).scalar_one()
    good = select(_x.serial).where(_x.status == "good", _x.state == "issued", _x.not_before <= now, _x.not_after > now)
    if except_serial is not None:
        good = good.where(_x.serial != except_serial)
    certs = conn.execute(select(func.count()).select_from(_certs).where(
        _c.operator_id.in_(admins), _c.removed_at.is_(None), _c.serial.in_(good))).scalar_one()
    return int(tokens) + int(certs)


def _lock_admins(conn: Connection) -> int:
    """Lock the admin rows for this transaction; how many are enabled."""
    rows = conn.execute(select(_o.id, _o.disabled_at).where(_o.role == ADMIN).with_for_update()).all()
    return sum(1 for r in rows if r.disabled_at is None)


class OperatorStore:
    """Operators and their credentials: add, read, change (each with its audit entry)."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    @staticmethod
    def _operator_in(conn: Connection, name: str) -> OperatorRecord:
        row = conn.execute(select(*_OP).where(_o.name == name)).first()
        if row is None:
            raise PkiError(ErrorKind.NOT_FOUND, f"no operator {name!r} (udun operator list)")
        return _operator(row)

    # --- operators ------------------------------------------------------------------

    def add(self, name: str, role: str, now: datetime, actor: str) -> OperatorRecord:
        with db_errors(conflict=f"an operator named {name!r} exists already"), self.engine.begin() as conn:
            conn.execute(insert(_ops).values(name=name, role=role, created_at=now, created_by=actor))
            append(conn, action="operator-add", actor=actor, subject=f"operator/{name}", details={"role": role},
                   now=now)
            return self._operator_in(conn, name)

    @translated
    def operator(self, name: str) -> OperatorRecord:
        with self.engine.connect() as conn:
            return self._operator_in(conn, name)

    @translated
    def operators(self) -> list[OperatorRecord]:
        with self.engine.connect() as conn:
            return [_operator(r) for r in conn.execute(select(*_OP).order_by(_o.name))]

    @translated
    def count_admins(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(_ops).where(
                _o.role == ADMIN, _o.disabled_at.is_(None))).scalar_one())

    @translated
    def change(self, name: str, now: datetime, actor: str, *, role: str | None = None,
               disabled: bool | None = None) -> OperatorRecord:
        """A new role, or disabled / enabled; never the last enabled admin out."""
        with self.engine.begin() as conn:
            admins = _lock_admins(conn)
            op = self._operator_in(conn, name)
            values: dict[str, Any] = {}
            if role is not None:
                if role == op.role:
                    raise PkiError(ErrorKind.CONFLICT, f"{name} has the role {role} already")
                values["role"] = role
                action, details = "operator-role", {"from": op.role, "to": role}
            else:
                assert disabled is not None
                if (op.disabled_at is not None) == disabled:
                    raise PkiError(ErrorKind.CONFLICT, f"{name} is {'disabled' if disabled else 'enabled'} already")
                values["disabled_at"] = now if disabled else None
                action, details = ("operator-disable" if disabled else "operator-enable"), {}
            leaves_admins = op.role == ADMIN and op.disabled_at is None and (role is not None or disabled)
            if leaves_admins and admins <= 1:
                raise PkiError(ErrorKind.CONFLICT, f"{name} is the last enabled admin: make another admin first")
            conn.execute(update(_ops).where(_o.id == op.id).values(**values))
            if role is not None or disabled:      # open sessions end: log in again with the new role
                conn.execute(update(_sessions).where(_s.operator_id == op.id, _s.ended_at.is_(None))
                             .values(ended_at=now))
            if leaves_admins and _usable_admin_credentials(conn, now) == 0:
                raise PkiError(ErrorKind.CONFLICT, f"no other admin has a credential to log in with: give one a "
                                                   f"token or certificate before changing {name}")
            append(conn, action=action, actor=actor, subject=f"operator/{name}", details=details, now=now)
            return self._operator_in(conn, name)

    # --- API tokens -----------------------------------------------------------------

    def add_token(self, name: str, row: dict[str, Any], now: datetime, actor: str) -> OperatorTokenRecord:
        """``row``: id, hash, expires_at."""
        with db_errors(conflict="the token id was taken; try again"), self.engine.begin() as conn:
            op = self._operator_in(conn, name)
            conn.execute(insert(_tokens).values(operator_id=op.id, created_at=now, created_by=actor, **row))
            append(conn, action="operator-token-add", actor=actor, subject=f"operator/{name}/token/{row['id']}",
                   details={"expires_at": row["expires_at"].isoformat() if row["expires_at"] else None}, now=now)
            return _token(conn.execute(_TOKENS.where(_t.id == row["id"])).one())

    @translated
    def token(self, token_id: str) -> OperatorTokenRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(_TOKENS.where(_t.id == token_id)).first()
        return _token(row) if row is not None else None

    @translated
    def tokens(self, name: str) -> list[OperatorTokenRecord]:
        with self.engine.connect() as conn:
            op = self._operator_in(conn, name)
            return [_token(r) for r in conn.execute(_TOKENS.where(_t.operator_id == op.id).order_by(_t.created_at))]

    @translated
    def revoke_token(self, token_id: str, now: datetime, actor: str) -> OperatorTokenRecord:
        with self.engine.begin() as conn:
            _lock_admins(conn)
            found = conn.execute(_TOKENS.where(_t.id == token_id)).first()
            if found is None:
                raise PkiError(ErrorKind.NOT_FOUND, f"no operator token {token_id}")
            done = conn.execute(update(_tokens).where(_t.id == token_id, _t.revoked_at.is_(None))
                                .values(revoked_at=now))
            if done.rowcount != 1:
                raise PkiError(ErrorKind.CONFLICT, f"token {token_id} is revoked already")
            rec = _token(found)
            self._keep_an_admin(conn, rec.operator, now, f"token {token_id}")
            append(conn, action="operator-token-revoke", actor=actor,
                   subject=f"operator/{rec.operator.name}/token/{token_id}", details={}, now=now)
            return _token(conn.execute(_TOKENS.where(_t.id == token_id)).one())

    @translated
    def usable_admin_credentials(self, now: datetime, except_serial: str | None = None) -> int:
        with self.engine.connect() as conn:
            return _usable_admin_credentials(conn, now, except_serial)

    @staticmethod
    def _keep_an_admin(conn: Connection, op: OperatorRecord, now: datetime, what: str) -> None:
        if op.role == ADMIN and _usable_admin_credentials(conn, now) == 0:
            raise PkiError(ErrorKind.CONFLICT, f"{what} is the last credential any admin can log in with: give "
                                               "an admin another one first")

    # --- token certificates ---------------------------------------------------------

    def add_cert(self, name: str, serial: str, spki_sha256: str, now: datetime, actor: str) -> OperatorCertRecord:
        """Register ``serial`` as ``name``'s (again, if it was removed). A key logs in one
        operator only: a certificate of a key registered to another operator is refused."""
        with db_errors(conflict=f"certificate {serial} belongs to an operator already"), self.engine.begin() as conn:
            op = self._operator_in(conn, name)
            others = conn.execute(select(_o.name).select_from(_certs.join(_ops, _o.id == _c.operator_id).join(
                _certificates, _x.serial == _c.serial)).where(_x.spki_sha256 == spki_sha256, _c.removed_at.is_(None),
                                                               _c.operator_id != op.id)).first()
            if others is not None:
                raise PkiError(ErrorKind.CONFLICT, f"this certificate's key logs in operator {others.name} already: "
                                                   "one key, one operator")
            again = conn.execute(update(_certs).where(_c.serial == serial, _c.removed_at.is_not(None))
                                 .values(operator_id=op.id, created_at=now, created_by=actor, removed_at=None))
            if again.rowcount == 0:
                conn.execute(insert(_certs).values(serial=serial, operator_id=op.id, created_at=now, created_by=actor))
            append(conn, action="operator-cert-add", actor=actor, subject=f"operator/{name}/cert/{serial}",
                   details={}, now=now)
            return _cert(conn.execute(_CERTS.where(_c.serial == serial)).one())

    @translated
    def cert(self, serial: str) -> OperatorCertRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(_CERTS.where(_c.serial == serial)).first()
        return _cert(row) if row is not None else None

    @translated
    def certs(self, name: str) -> list[OperatorCertRecord]:
        with self.engine.connect() as conn:
            op = self._operator_in(conn, name)
            return [_cert(r) for r in conn.execute(_CERTS.where(_c.operator_id == op.id).order_by(_c.created_at))]

    @translated
    def remove_cert(self, serial: str, now: datetime, actor: str) -> OperatorCertRecord:
        with self.engine.begin() as conn:
            _lock_admins(conn)
            found = conn.execute(_CERTS.where(_c.serial == serial)).first()
            if found is None:
                raise PkiError(ErrorKind.NOT_FOUND, f"certificate {serial} belongs to no operator")
            done = conn.execute(update(_certs).where(_c.serial == serial, _c.removed_at.is_(None))
                                .values(removed_at=now))
            if done.rowcount != 1:
                raise PkiError(ErrorKind.CONFLICT, f"certificate {serial} was removed already")
            rec = _cert(found)
            self._keep_an_admin(conn, rec.operator, now, f"certificate {serial}")
            conn.execute(update(_sessions).where(_s.cert_serial == serial, _s.ended_at.is_(None))
                         .values(ended_at=now))
            append(conn, action="operator-cert-remove", actor=actor,
                   subject=f"operator/{rec.operator.name}/cert/{serial}", details={}, now=now)
            return _cert(conn.execute(_CERTS.where(_c.serial == serial)).one())

    # --- login challenges and sessions ----------------------------------------------

    @translated
    def add_challenge(self, row: dict[str, Any], now: datetime, quota: int, per_address: int) -> None:
        """``row``: id, nonce, address, expires_at. Expired ones go first; more than
        ``per_address`` open ones of one address, or ``quota`` in all, are refused (the login
        route is public: one client cannot use up everybody's)."""
        with self.engine.begin() as conn:
            conn.execute(delete(_ch).where(_ch.c.expires_at <= now))
            mine = conn.execute(select(func.count()).select_from(_ch).where(
                _ch.c.used_at.is_(None), _ch.c.address == row["address"])).scalar_one()
            total = conn.execute(select(func.count()).select_from(_ch).where(_ch.c.used_at.is_(None))).scalar_one()
            if mine >= per_address or total >= quota:
                raise PkiError(ErrorKind.RATE_LIMITED, "too many open login challenges; retry in a minute",
                               retry_after=60)
            conn.execute(insert(_ch).values(created_at=now, **row))

    @translated
    def take_challenge(self, challenge_id: str, now: datetime) -> str | None:
        """The nonce of an open challenge, now used (once: a concurrent login gets None)."""
        with self.engine.begin() as conn:
            row = conn.execute(select(_ch.c.nonce).where(_ch.c.id == challenge_id, _ch.c.used_at.is_(None),
                                                         _ch.c.expires_at > now)).first()
            if row is None:
                return None
            done = conn.execute(update(_ch).where(_ch.c.id == challenge_id, _ch.c.used_at.is_(None))
                                .values(used_at=now))
            return str(row.nonce) if done.rowcount == 1 else None

    def add_session(self, row: dict[str, Any], operator: OperatorRecord, now: datetime, details: dict[str, Any]
                    ) -> SessionRecord:
        """``row``: id, secret_sha256, cert_serial, expires_at. Audited as a login."""
        with db_errors(conflict="the session id was taken; try again"), self.engine.begin() as conn:
            conn.execute(insert(_sessions).values(operator_id=operator.id, created_at=now, **row))
            append(conn, action="operator-login", actor=f"operator:{operator.name}",
                   subject=f"operator/{operator.name}/session/{row['id']}", details=details, now=now)
            return _session(conn.execute(_SESSIONS.where(_s.id == row["id"])).one())

    @translated
    def session(self, session_id: str) -> SessionRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(_SESSIONS.where(_s.id == session_id)).first()
        return _session(row) if row is not None else None

    @translated
    def end_session(self, session: SessionRecord, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(_sessions).where(_s.id == session.id, _s.ended_at.is_(None)).values(ended_at=now))
            append(conn, action="operator-logout", actor=f"operator:{session.operator.name}",
                   subject=f"operator/{session.operator.name}/session/{session.id}", details={}, now=now)

    @translated
    def advance(self, session_id: str, seq: int) -> bool:
        """Take request number ``seq`` of a signed session: True once, for a number above
        every one taken before (a replayed signed request gets False)."""
        with self.engine.begin() as conn:
            done = conn.execute(update(_sessions).where(and_(_s.id == session_id, _s.last_seq < seq))
                                .values(last_seq=seq))
            return done.rowcount == 1
