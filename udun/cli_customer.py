"""`udun customer ...`: customers and the payer accounts their certificates pay from
(account binding, ca.customers). On the CA machine's console, as `udun ca` (audited as
``cli:<user>``); through the admin API the binding changes are under dual control."""
from __future__ import annotations

import getpass
import json
from typing import TYPE_CHECKING

import click

from udun.common import info, read_input, settings

if TYPE_CHECKING:
    from ca.customers import Customers
    from ca.storage.customers import CustomerRecord


def _customers() -> Customers:
    from ca.customers import Customers
    from ca.directory import CaDirectory

    ca = CaDirectory.open(settings())
    return Customers(ca.store, ca.clock)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _show(rec: CustomerRecord, as_json: bool) -> None:
    from ca.customers import customer_json

    if as_json:
        click.echo(json.dumps(customer_json(rec), ensure_ascii=False))
        return
    click.echo(f"customer      {rec.id}  {rec.name}")
    click.echo(f"accounts      {', '.join(rec.accounts) or '(none: pays from no account)'}")
    click.echo(f"certificates  {', '.join(rec.certificates) or '(none)'}")
    click.echo(f"created       {rec.created_at:%Y-%m-%d %H:%M:%S}Z by {rec.created_by}")


@click.group("customer")
def customer_group() -> None:
    """Customers, their payer accounts and certificates (account binding).

    A certificate pays only from the accounts of the customer it is bound to; an account
    belongs to one customer. Bind a certificate at issuance (udun ca issue --customer),
    through its enrollment (udun enrollment create --customer), or later (customer bind).
    """


@customer_group.command("add")
@click.argument("customer_id", metavar="ID")
@click.option("--name", required=True, help="The customer's name.")
@click.option("--account", "accounts", multiple=True, help="A payer account (repeatable).")
@click.option("--json", "as_json", is_flag=True)
def customer_add(customer_id: str, name: str, accounts: tuple[str, ...], as_json: bool) -> None:
    """Add a customer (ID: the bank's customer number) with payer accounts."""
    _show(_customers().add(customer_id, name, list(accounts), actor=_actor()), as_json)


@customer_group.command("show")
@click.argument("customer_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True)
def customer_show(customer_id: str, as_json: bool) -> None:
    _show(_customers().get(customer_id), as_json)


@customer_group.command("list")
@click.option("--account", help="Only the customer with this account.")
@click.option("--after", metavar="ID", help="Customers after this id (paging).")
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON lines.")
def customer_list(account: str | None, after: str | None, limit: int, as_json: bool) -> None:
    from ca.customers import customer_json

    for rec in _customers().find(limit, after, account):
        click.echo(json.dumps(customer_json(rec), ensure_ascii=False) if as_json else
                   f"{rec.id}  {rec.name}  accounts {len(rec.accounts)}  certificates {len(rec.certificates)}")


@customer_group.command("account-add")
@click.argument("customer_id", metavar="ID")
@click.argument("account")
def customer_account_add(customer_id: str, account: str) -> None:
    """Bind one more payer account to the customer."""
    _customers().add_account(customer_id, account, actor=_actor())
    info(f"account {account} bound to customer {customer_id}")


@customer_group.command("account-remove")
@click.argument("customer_id", metavar="ID")
@click.argument("account")
def customer_account_remove(customer_id: str, account: str) -> None:
    """The customer's certificates no longer pay from this account."""
    _customers().remove_account(customer_id, account, actor=_actor())
    info(f"account {account} no longer bound to customer {customer_id}")


@customer_group.command("bind")
@click.argument("customer_id", metavar="ID")
@click.option("--serial", help="A certificate of this CA, by serial (hex).")
@click.option("--cert", "cert_file", metavar="CERT.pem", help="A certificate of another trusted CA (PEM or DER; "
                                                               "of a PEM file with its chain, the first).")
def customer_bind(customer_id: str, serial: str | None, cert_file: str | None) -> None:
    """Bind a certificate (bound to no customer yet) to the customer."""
    der = None
    if cert_file is not None:
        from pkicore.pathval import load_certs

        der = load_certs(read_input(cert_file, "certificate"))[0]
    _customers().bind(customer_id, actor=_actor(), serial=serial, cert_der=der)
    info(f"certificate {serial.lower() if serial else cert_file} bound to customer {customer_id}")
