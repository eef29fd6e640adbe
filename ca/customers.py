"""Customers and account binding (issue 13 point 1).

A customer is the bank's customer number with the payer accounts its holder may pay from.
A client certificate is bound to one customer (at issuance, through its enrollment, or
later by an operator); the verify API refuses a payment whose payer account is not one of
the signer's customer's (ACCOUNT_NOT_BOUND, pkicore.report), before anything is stored. A
renewal or re-key keeps the binding of the certificate it replaces.

An account belongs to one customer only: the customer who holds it cannot have it bound
to anyone else's certificate.
"""
from __future__ import annotations

import hashlib
import re

from ca.storage.customers import Binding, CustomerRecord, CustomerStore
from ca.storage.store import Store
from pkicore.clock import Clock, rfc3339
from pkicore.errors import ErrorKind, PkiError
from pkicore.text import visible_problem
from pkicore.tx import mask_account, valid_account

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_ACCOUNTS = 20


def checked_id(customer_id: object) -> str:
    if not isinstance(customer_id, str) or not _ID.fullmatch(customer_id):
        raise PkiError(ErrorKind.BAD_INPUT, "a customer id is 1 to 64 letters, digits and . _ - (the bank's "
                                            "customer number)", field="customer")
    return customer_id


def checked_account(account: object) -> str:
    if not isinstance(account, str) or not valid_account(account):
        raise PkiError(ErrorKind.BAD_INPUT, "an account is 4 to 34 digits or capital letters, as payments carry it",
                       field="account")
    return account


def checked_accounts(accounts: object) -> list[str]:
    if not isinstance(accounts, (list, tuple)) or len(accounts) > MAX_ACCOUNTS:
        raise PkiError(ErrorKind.BAD_INPUT, f"accounts: at most {MAX_ACCOUNTS} account numbers", field="accounts")
    out = [checked_account(a) for a in accounts]
    if len(set(out)) != len(out):
        raise PkiError(ErrorKind.BAD_INPUT, "accounts: each account once", field="accounts")
    return out


def checked_serial(serial: object) -> str:
    """A certificate serial as udun stores it: lowercase hex, without 0x."""
    text = serial.lower().removeprefix("0x") if isinstance(serial, str) else ""
    if not re.fullmatch(r"[0-9a-f]{1,40}", text):
        raise PkiError(ErrorKind.BAD_INPUT, "a serial is hexadecimal", field="serial")
    return text


def checked_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or visible_problem(name):
        raise PkiError(ErrorKind.BAD_INPUT, "name is the customer's name, 1 to 200 visible characters", field="name")
    return name


class Customers:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = CustomerStore(store)
        self.clock = clock

    def add(self, customer_id: str, name: str, accounts: list[str] | tuple[str, ...] = (), *,
            actor: str) -> CustomerRecord:
        return self.store.add(checked_id(customer_id), checked_name(name), checked_accounts(list(accounts)),
                              self.clock(), actor)

    def get(self, customer_id: str) -> CustomerRecord:
        rec = self.store.get(checked_id(customer_id))
        if rec is None:
            raise PkiError(ErrorKind.NOT_FOUND, f"no customer {customer_id}")
        return rec

    def find(self, limit: int = 100, after: str | None = None, account: str | None = None) -> list[CustomerRecord]:
        return self.store.find(limit, checked_id(after) if after else None,
                               checked_account(account) if account else None)

    def add_account(self, customer_id: str, account: str, *, actor: str) -> CustomerRecord:
        return self.store.add_account(checked_id(customer_id), checked_account(account), self.clock(), actor)

    def remove_account(self, customer_id: str, account: str, *, actor: str) -> CustomerRecord:
        return self.store.remove_account(checked_id(customer_id), checked_account(account), self.clock(), actor)

    def bind(self, customer_id: str, *, actor: str, serial: str | None = None,
             cert_der: bytes | None = None) -> CustomerRecord:
        """Bind one of this CA's certificates (``serial``) or another trusted CA's (its DER)."""
        if (serial is None) == (cert_der is None):
            raise PkiError(ErrorKind.BAD_INPUT, "name the certificate by its serial or give the certificate itself",
                           field="serial")
        if serial is not None:
            return self.store.bind(checked_id(customer_id), self.clock(), actor, serial=checked_serial(serial))
        assert cert_der is not None
        return self.store.bind(checked_id(customer_id), self.clock(), actor,
                               cert_sha256=hashlib.sha256(cert_der).hexdigest())

    def must_exist(self, customer_id: str) -> str:
        """``customer_id`` when such a customer exists (checked before a certificate is signed for it)."""
        if not self.store.exists(checked_id(customer_id)):
            raise PkiError(ErrorKind.NOT_FOUND, f"no customer {customer_id}", field="customer")
        return customer_id


def binding_refusal(binding: Binding | None, serial: str, account: str) -> str | None:
    """Why a payment from ``account`` signed under certificate ``serial`` is refused, given
    ``CustomerStore.binding``; None when the account is the signer's customer's."""
    if binding is None:
        return f"certificate {serial} is bound to no customer of this CA: it pays from no account"
    if not binding.account_bound:
        return f"payer account {mask_account(account)} is not bound to the signer's customer"
    return None


def customer_json(rec: CustomerRecord) -> dict[str, object]:
    return {"customer": rec.id, "name": rec.name, "accounts": list(rec.accounts),
            "certificates": list(rec.certificates), "created_by": rec.created_by,
            "created_at": rfc3339(rec.created_at)}
