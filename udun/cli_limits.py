"""`udun limits ...`: transaction limits (交易限额, ca.limits) per profile and per customer.
On the CA machine's console (audited as ``cli:<user>``); through the admin API a raise waits
for a second operator."""
from __future__ import annotations

import getpass
import json
from typing import TYPE_CHECKING

import click

from udun.common import info, settings

if TYPE_CHECKING:
    from ca.limitpolicy import LimitPolicy


def _policy() -> LimitPolicy:
    from ca.directory import CaDirectory
    from ca.limitpolicy import LimitPolicy

    ca = CaDirectory.open(settings())
    return LimitPolicy(ca.store, ca.clock)


def _scope(profile: str | None, customer: str | None) -> tuple[str, str]:
    if (profile is None) == (customer is None):
        raise click.UsageError("name one: --profile P or --customer ID")
    return ("profile", profile) if profile is not None else ("customer", customer or "")


@click.group("limits")
def limits_group() -> None:
    """Transaction limits (交易限额): per payment and per day, per currency.

    A customer's own limits win over their certificate profile's; a currency with neither
    is refused. Days are calendar days in UDUN_LIMIT_TIMEZONE (Asia/Shanghai). Defaults of
    the client profile: 500,000.00 CNY a payment, 1,000,000.00 CNY a day.
    """


@limits_group.command("list")
@click.option("--profile", help="Only this profile's.")
@click.option("--customer", help="Only this customer's own.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines.")
def limits_list(profile: str | None, customer: str | None, as_json: bool) -> None:
    from ca.limits import limit_json, money

    scope, subject = _scope(profile, customer) if profile or customer else (None, None)
    for lim in _policy().find(scope, subject):
        if as_json:
            click.echo(json.dumps(limit_json(lim), ensure_ascii=False))
            continue
        per_payment = money(lim.per_payment, lim.currency) if lim.per_payment is not None else "-"
        per_day = money(lim.per_day, lim.currency) if lim.per_day is not None else "-"
        click.echo(f"{lim.scope:<8} {lim.subject:<20} {lim.currency}  per payment {per_payment:>24}  "
                   f"per day {per_day:>24}  ({lim.set_by})")


@limits_group.command("set")
@click.option("--profile", help="A certificate profile's limits (client).")
@click.option("--customer", help="A customer's own limits.")
@click.option("--currency", default="CNY", show_default=True)
@click.option("--per-payment", metavar="AMOUNT", help='Largest payment, e.g. "50000.00".')
@click.option("--per-day", metavar="AMOUNT", help="Most in one day.")
def limits_set(profile: str | None, customer: str | None, currency: str, per_payment: str | None,
               per_day: str | None) -> None:
    """Set (replace) the limits of a profile or a customer in a currency."""
    from ca.limits import parse_amount

    scope, subject = _scope(profile, customer)
    policy = _policy()
    lim = policy.checked(scope, subject, currency, parse_amount(per_payment, "per_payment"),
                         parse_amount(per_day, "per_day"))
    policy.put(lim, actor=f"cli:{getpass.getuser()}")
    info(f"{scope} {subject}: {currency} limits set")


@limits_group.command("remove")
@click.option("--customer", required=True)
@click.option("--currency", default="CNY", show_default=True)
def limits_remove(customer: str, currency: str) -> None:
    """A customer's own limits go: their profile's apply again."""
    _policy().remove("customer", customer, currency, actor=f"cli:{getpass.getuser()}")
    info(f"customer {customer}: own {currency} limits removed")


@limits_group.command("usage")
@click.option("--customer", required=True)
@click.option("--days", type=click.IntRange(1, 366), default=31, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON lines.")
def limits_usage(customer: str, days: int, as_json: bool) -> None:
    """What the customer paid, per day and currency (newest first)."""
    from ca.limits import money, usage_json

    for day, currency, used, payments in _policy().usage(customer, days):
        click.echo(json.dumps(usage_json(day, currency, used, payments)) if as_json else
                   f"{day}  {money(used, currency):>26}  {payments} payments")
