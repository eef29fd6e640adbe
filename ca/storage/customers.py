"""Storage for customers, their payer accounts and their certificates (migration 0014).

Each change is one transaction with its audit entry. An account belongs to one customer
(its primary key), so binding a taken account fails as a conflict naming nobody's data but
the number. The verify API reads one row per payment (``binding``) on the raw driver path.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, insert, select

from ca.storage.audit import append
from ca.storage.errors import db_errors, translated
from ca.storage.schema import certificate_customers as _bound
from ca.storage.schema import certificates as _certs
from ca.storage.schema import customer_accounts as _accounts
from ca.storage.schema import customers as _customers
from ca.storage.schema import utc
from ca.storage.store import Store
from pkicore.errors import ErrorKind, PkiError

_b = _bound.c
_a = _accounts.c
_cu = _customers.c

# The verify API's read: the signer certificate's customer, and whether the payer account
# is one of theirs (no row: the certificate is bound to no customer). By the certificate's
# SHA-256, not its serial: a certificate of another trusted CA may carry the same serial.
# An account is its table's key: the outer join finds one row or none.
# With the certificate's profile (its limits, ca.limits): NULL for another CA's certificate.
_BINDING = (select(_b.customer_id, _a.account, _certs.c.profile)
            .select_from(_bound.outerjoin(_accounts, and_(_a.customer_id == _b.customer_id,
                                                          _a.account == bindparam("a")))
                         .outerjoin(_certs, _certs.c.serial == _b.serial))
            .where(_b.cert_sha256 == bindparam("h")))


@dataclass(frozen=True)
class Binding:
    """A signer certificate's customer, for one payment."""

    customer: str
    account_bound: bool         # the payment's payer account is the customer's
    profile: str                # the certificate's profile (another CA's: "client"), for its limits


@dataclass(frozen=True)
class CustomerRecord:
    id: str
    name: str
    created_by: str
    created_at: datetime
    accounts: tuple[str, ...]
    certificates: tuple[str, ...]          # serials bound to the customer ("sha256:<hex>": another CA's)


def insert_customer(conn: Connection, customer_id: str, name: str, accounts: list[str] | tuple[str, ...],
                    now: datetime, actor: str) -> None:
    """A new customer with its accounts, in the caller's transaction (audited)."""
    conn.execute(insert(_customers).values(id=customer_id, name=name, created_by=actor, created_at=now))
    for account in accounts:
        _insert_account(conn, customer_id, account, now, actor)
    append(conn, action="customer-add", actor=actor, subject=f"customer/{customer_id}",
           details={"name": name, "accounts": list(accounts)}, now=now)


def _insert_account(conn: Connection, customer_id: str, account: str, now: datetime, actor: str) -> None:
    owner = conn.execute(select(_a.customer_id).where(_a.account == account)).scalar()
    if owner is not None:
        raise PkiError(ErrorKind.CONFLICT, f"account {account} is bound to a customer already"
                       + (" (this one)" if owner == customer_id else ""), field="account")
    conn.execute(insert(_accounts).values(account=account, customer_id=customer_id, added_by=actor, added_at=now))


class CustomerStore:
    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.raw = store.raw

    def add(self, customer_id: str, name: str, accounts: list[str] | tuple[str, ...], now: datetime,
            actor: str) -> CustomerRecord:
        with db_errors(conflict=f"customer {customer_id} exists already, or one of the accounts is bound"), \
                self.engine.begin() as conn:
            if conn.execute(select(_cu.id).where(_cu.id == customer_id)).first() is not None:
                raise PkiError(ErrorKind.CONFLICT, f"customer {customer_id} exists already", field="id")
            insert_customer(conn, customer_id, name, accounts, now, actor)
            return self._read(conn, customer_id)

    @translated
    def get(self, customer_id: str) -> CustomerRecord | None:
        with self.engine.connect() as conn:
            if conn.execute(select(_cu.id).where(_cu.id == customer_id)).first() is None:
                return None
            return self._read(conn, customer_id)

    @translated
    def find(self, limit: int, after: str | None = None, account: str | None = None) -> list[CustomerRecord]:
        """Customers by id (``after`` one for the next page), or the one with ``account``."""
        stmt = select(_cu.id).order_by(_cu.id).limit(limit)
        if after is not None:
            stmt = stmt.where(_cu.id > after)
        if account is not None:
            stmt = stmt.where(_cu.id.in_(select(_a.customer_id).where(_a.account == account)))
        with self.engine.connect() as conn:
            return [self._read(conn, r[0]) for r in conn.execute(stmt).all()]

    def add_account(self, customer_id: str, account: str, now: datetime, actor: str) -> CustomerRecord:
        with db_errors(conflict=f"account {account} is bound to a customer already"), self.engine.begin() as conn:
            self._must_exist(conn, customer_id)
            _insert_account(conn, customer_id, account, now, actor)
            append(conn, action="customer-account-add", actor=actor, subject=f"customer/{customer_id}",
                   details={"account": account}, now=now)
            return self._read(conn, customer_id)

    def remove_account(self, customer_id: str, account: str, now: datetime, actor: str) -> CustomerRecord:
        with db_errors(), self.engine.begin() as conn:
            self._must_exist(conn, customer_id)
            gone = conn.execute(delete(_accounts).where(_a.customer_id == customer_id, _a.account == account))
            if gone.rowcount != 1:
                raise PkiError(ErrorKind.NOT_FOUND, f"customer {customer_id} has no account {account}",
                               field="account")
            append(conn, action="customer-account-remove", actor=actor, subject=f"customer/{customer_id}",
                   details={"account": account}, now=now)
            return self._read(conn, customer_id)

    def bind(self, customer_id: str, now: datetime, actor: str, *, serial: str | None = None,
             cert_sha256: str | None = None) -> CustomerRecord:
        """Bind a certificate bound to no customer yet: one of this CA's by ``serial`` (it
        must be issued), or one of another trusted CA by its ``cert_sha256``."""
        with db_errors(conflict="the certificate is bound to a customer already"), self.engine.begin() as conn:
            self._must_exist(conn, customer_id)
            if serial is not None:
                cert_sha256 = conn.execute(select(_certs.c.cert_sha256).where(
                    _certs.c.serial == serial, _certs.c.state == "issued")).scalar()
                if cert_sha256 is None:
                    raise PkiError(ErrorKind.NOT_FOUND, f"no issued certificate {serial}", field="serial")
            else:
                serial = conn.execute(select(_certs.c.serial).where(_certs.c.cert_sha256 == cert_sha256)).scalar()
            owner = conn.execute(select(_b.customer_id).where(_b.cert_sha256 == cert_sha256)).scalar()
            if owner is not None:
                raise PkiError(ErrorKind.CONFLICT, f"the certificate is bound to customer {owner} already",
                               field="serial")
            conn.execute(insert(_bound).values(cert_sha256=cert_sha256, serial=serial, customer_id=customer_id,
                                               bound_by=actor, bound_at=now))
            append(conn, action="certificate-bind", actor=actor, subject=serial or f"sha256:{cert_sha256}",
                   details={"customer": customer_id, "certificate_sha256": cert_sha256}, now=now)
            return self._read(conn, customer_id)

    @translated
    def exists(self, customer_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(_cu.id).where(_cu.id == customer_id)).first() is not None

    @translated
    def owner_of(self, cert_sha256: str) -> str | None:
        """The customer the certificate with this SHA-256 is bound to, if any."""
        with self.engine.connect() as conn:
            return conn.execute(select(_b.customer_id).where(_b.cert_sha256 == cert_sha256)).scalar()  # type: ignore[no-any-return]

    @translated
    def customer_of(self, serial: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(_b.customer_id).where(_b.serial == serial)).scalar()  # type: ignore[no-any-return]

    def binding(self, cert_sha256: str, account: str) -> Binding | None:
        """The binding of the certificate with this SHA-256 (hex) for a payment from
        ``account``; None when it is bound to no customer. One raw read: the verify API asks
        it per payment."""
        row = self.raw.one(_BINDING, {"h": cert_sha256, "a": account})
        return Binding(str(row[0]), row[1] is not None, row[2] or "client") if row is not None else None

    @staticmethod
    def _must_exist(conn: Connection, customer_id: str) -> None:
        if conn.execute(select(_cu.id).where(_cu.id == customer_id)).first() is None:
            raise PkiError(ErrorKind.NOT_FOUND, f"no customer {customer_id}", field="customer")

    @staticmethod
    def _read(conn: Connection, customer_id: str) -> CustomerRecord:
        row: Any = conn.execute(select(_customers).where(_cu.id == customer_id)).one()
        accounts = tuple(r[0] for r in conn.execute(select(_a.account).where(_a.customer_id == customer_id)
                                                    .order_by(_a.added_at, _a.account)))
        serials = tuple(r[0] or f"sha256:{r[1]}" for r in conn.execute(
            select(_b.serial, _b.cert_sha256).where(_b.customer_id == customer_id).order_by(_b.bound_at, _b.cert_sha256)))
        return CustomerRecord(row.id, row.name, row.created_by, utc(row.created_at), accounts, serials)
