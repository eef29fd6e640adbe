"""Transaction limits (交易限额, issue 13 point 2): per payment and per day, per currency.

A profile's limits (``client``: udun's defaults below until an operator sets them) apply to
every customer whose certificate has that profile; a customer may have their own, which
win. A currency with no limit at either level is refused: a bank opts in to each currency
it pays in, nothing is unlimited by omission.

Amounts are kept as integers in hundredths (a payment's amount has at most two places,
pkicore.tx), so sums are exact on every engine. The day is the calendar day of the
verification's receipt (never the payment's own created_at, which the signer writes) in
``UDUN_LIMIT_TIMEZONE`` (Asia/Shanghai). The verify API reserves the amount against the day's
limit in the same transaction as the evidence record (ca.storage.limits), so payments on
several workers or nodes at once cannot pass the limit together.

Raising a limit (a profile's, or a customer's above their profile's) is under dual control
(the ``limit-raise`` policy, ca.approvals); lowering one is not.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from pkicore.errors import ErrorKind, PkiError

HUNDREDTHS = 100
MAX_AMOUNT = 10 ** 17            # hundredths: 999,999,999,999,999.99 is the largest payment (pkicore.tx)
_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?")

# udun's default limits of the client profile, in hundredths: CCB's 网银盾 defaults of
# 500,000 CNY a payment and 1,000,000 CNY a day. Other currencies: none (refused).
DEFAULT_LIMITS: dict[tuple[str, str], tuple[int | None, int | None]] = {
    ("client", "CNY"): (500_000 * HUNDREDTHS, 1_000_000 * HUNDREDTHS),
}


@dataclass(frozen=True)
class Limit:
    """The limits of one profile or customer in one currency (None: not set at this level)."""

    scope: str                      # profile | customer
    subject: str                    # the profile's name or the customer's id
    currency: str
    per_payment: int | None         # hundredths
    per_day: int | None
    set_by: str = "udun default"
    set_at: datetime | None = None


@dataclass(frozen=True)
class Effective:
    """What applies to one customer's payment in one currency."""

    per_payment: int | None
    per_day: int | None
    per_payment_from: str           # "customer C0001" / "profile client"
    per_day_from: str

    @property
    def unset(self) -> bool:
        return self.per_payment is None and self.per_day is None


def effective(profile: Limit | None, customer: Limit | None) -> Effective:
    """The customer's own limit where set, else the profile's, field by field."""
    def pick(field: str) -> tuple[int | None, str]:
        for lim in (customer, profile):
            value = getattr(lim, field) if lim is not None else None
            if value is not None:
                assert lim is not None
                return value, f"{lim.scope} {lim.subject}"
        return None, "none"
    pp, pp_from = pick("per_payment")
    pd, pd_from = pick("per_day")
    return Effective(pp, pd, pp_from, pd_from)


def hundredths(amount: Decimal) -> int:
    return int(amount * HUNDREDTHS)


def parse_amount(text: object, field: str) -> int | None:
    """A limit as given ("50000", "50000.00"; None or "" for none), in hundredths."""
    if text is None or text == "":
        return None
    if not isinstance(text, str) or not _AMOUNT.fullmatch(text):
        raise PkiError(ErrorKind.BAD_INPUT, f"{field} is an amount like \"50000.00\" (at most 2 places)", field=field)
    value = hundredths(Decimal(text))
    if value <= 0:
        raise PkiError(ErrorKind.BAD_INPUT, f"{field} must be more than 0", field=field)
    return value


def money(value: int, currency: str) -> str:
    """Hundredths as a bank prints them: 1,000,000.00 CNY."""
    whole, cents = divmod(value, HUNDREDTHS)
    return f"{whole:,}.{cents:02d} {currency}"


def amount_text(value: int | None) -> str | None:
    """Hundredths as the API writes amounts ("1000000.00")."""
    if value is None:
        return None
    whole, cents = divmod(value, HUNDREDTHS)
    return f"{whole}.{cents:02d}"


def day_of(moment: datetime, zone: str) -> str:
    """The calendar day (YYYY-MM-DD) of ``moment`` in the limits' time zone."""
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class Lookup:
    """What one payment's check needs (ca.storage.limits.LimitStore.lookup)."""

    profile: Limit | None           # the profile's row, or udun's default, or None
    customer: Limit | None
    used_today: int                 # hundredths, before this payment


def refusal(found: Lookup, amount: int, currency: str, day: str) -> str | None:
    """Why a payment of ``amount`` (hundredths) is over its limits, or None. The daily limit
    is checked here against what was committed before; the reservation decides for good."""
    eff = effective(found.profile, found.customer)
    if eff.unset:
        return f"no limit is set for {currency} payments (profile or customer): {currency} is not paid in"
    if eff.per_payment is not None and amount > eff.per_payment:
        return (f"the per-payment limit is {money(eff.per_payment, currency)} ({eff.per_payment_from}); this payment "
                f"is {money(amount, currency)}")
    if eff.per_day is not None and found.used_today + amount > eff.per_day:
        return day_refusal(eff, found.used_today, amount, currency, day)
    return None


def day_refusal(eff: Effective, used: int, amount: int, currency: str, day: str) -> str:
    assert eff.per_day is not None
    left = max(0, eff.per_day - used)
    return (f"the daily limit is {money(eff.per_day, currency)} ({eff.per_day_from}); {money(left, currency)} is left "
            f"for {day}, this payment is {money(amount, currency)}")


def within(found: Lookup, currency: str, day: str) -> str:
    """The passed check's words."""
    eff = effective(found.profile, found.customer)
    parts = []
    if eff.per_payment is not None:
        parts.append(f"per payment {money(eff.per_payment, currency)} ({eff.per_payment_from})")
    if eff.per_day is not None:
        parts.append(f"per day {money(eff.per_day, currency)} ({eff.per_day_from}), reserved on {day}")
    return "within the limits: " + "; ".join(parts)


def limit_json(lim: Limit) -> dict[str, object]:
    from pkicore.clock import rfc3339

    return {"scope": lim.scope, "subject": lim.subject, "currency": lim.currency,
            "per_payment": amount_text(lim.per_payment), "per_day": amount_text(lim.per_day),
            "set_by": lim.set_by, "set_at": rfc3339(lim.set_at) if lim.set_at else None}


def usage_json(day: str, currency: str, used: int, payments: int) -> dict[str, object]:
    return {"day": day, "currency": currency, "used": amount_text(used), "payments": payments}
