"""Storage for transaction limits and each customer's daily usage (migration 0015, ca.limits).

The verify API reads a payment's limits and the day's usage in one statement (``lookup``),
and reserves the amount inside the evidence transaction (``reserve``, called by
ca.storage.evidence): the row is made if it is missing (INSERT ... ON CONFLICT DO NOTHING,
both engines), then ``used`` grows only WHERE the sum stays within the limit. On PostgreSQL a
second transaction updating the row waits for the first to commit and then evaluates the
condition again on the committed row (READ COMMITTED re-check); SQLite has one writer. So
concurrent payments never pass the limit together, on any number of nodes.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ca.limits import DEFAULT_LIMITS, Effective, Limit, Lookup
from ca.storage.audit import append
from ca.storage.errors import db_errors, translated
from ca.storage.raw import RawDb
from ca.storage.schema import limit_usage as _usage
from ca.storage.schema import limits as _limits
from ca.storage.schema import opt_utc
from ca.storage.store import Store

_l = _limits.c
_u = _usage.c


def _field(scope: str, subject: str, column: Any) -> Any:
    return (select(column).where(_l.scope == scope, _l.subject == bindparam(subject), _l.currency == bindparam("cur"))
            .scalar_subquery())


# One round trip per payment: the profile's and the customer's limits, whether the profile
# has a row of its own (else udun's defaults), and what the customer used on the day.
_LOOKUP = select(
    _field("profile", "profile", _l.per_payment), _field("profile", "profile", _l.per_day),
    _field("customer", "customer", _l.per_payment), _field("customer", "customer", _l.per_day),
    select(func.count()).select_from(_limits).where(_l.scope == "profile", _l.subject == bindparam("profile"),
                                                    _l.currency == bindparam("cur")).scalar_subquery(),
    select(_u.used).where(_u.customer_id == bindparam("customer"), _u.currency == bindparam("cur"),
                          _u.day == bindparam("day")).scalar_subquery(),
)
_ROW = {"customer_id": bindparam("customer"), "currency": bindparam("cur"), "day": bindparam("day"),
        "used": literal(0), "payments": literal(0)}
_ENSURE = {"sqlite": sqlite.insert(_usage).values(_ROW).on_conflict_do_nothing(),
           "postgresql": postgresql.insert(_usage).values(_ROW).on_conflict_do_nothing()}
_KEY = and_(_u.customer_id == bindparam("customer"), _u.currency == bindparam("cur"), _u.day == bindparam("day"))
_RESERVE_WITHIN = (update(_usage).where(_KEY, _u.used + bindparam("amount") <= bindparam("per_day"))
                   .values(used=_u.used + bindparam("amount"), payments=_u.payments + 1))
_RESERVE = update(_usage).where(_KEY).values(used=_u.used + bindparam("amount"), payments=_u.payments + 1)
_USED = select(_u.used).where(_KEY)


@dataclass(frozen=True)
class Reservation:
    """The amount to add to a customer's day inside the evidence transaction."""

    customer: str
    currency: str
    day: str
    amount: int
    limits: Effective               # what applied (per_day None: no daily limit, usage counted all the same)

    @property
    def per_day(self) -> int | None:
        return self.limits.per_day


class OverLimit(Exception):
    """The day's limit would be passed; ``used`` is what the day holds (committed)."""

    def __init__(self, used: int) -> None:
        super().__init__(used)
        self.used = used


def reserve(db: RawDb, cur: Any, r: Reservation) -> None:
    """In the caller's transaction: add the amount to the customer's day, within the limit
    (OverLimit otherwise; the caller's transaction must then roll back)."""
    params = {"customer": r.customer, "cur": r.currency, "day": r.day}
    db.execute(cur, _ENSURE[db.engine.dialect.name], params)
    if r.per_day is None:
        db.execute(cur, _RESERVE, {**params, "amount": r.amount})
        return
    db.execute(cur, _RESERVE_WITHIN, {**params, "amount": r.amount, "per_day": r.per_day})
    if cur.rowcount != 1:
        db.execute(cur, _USED, params)
        row = cur.fetchone()
        raise OverLimit(int(row[0]) if row else 0)


class LimitStore:
    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.raw = store.raw

    def lookup(self, profile: str, customer: str, currency: str, day: str) -> Lookup:
        row = self.raw.one(_LOOKUP, {"profile": profile, "customer": customer, "cur": currency, "day": day})
        assert row is not None
        pp, pd, cpp, cpd, has_profile, used = row
        if has_profile:
            prof: Limit | None = Limit("profile", profile, currency, pp, pd)
        else:
            default = DEFAULT_LIMITS.get((profile, currency))
            prof = Limit("profile", profile, currency, *default) if default else None
        cust = Limit("customer", customer, currency, cpp, cpd) if cpp is not None or cpd is not None else None
        return Lookup(prof, cust, int(used or 0))

    @translated
    def get(self, scope: str, subject: str, currency: str) -> Limit | None:
        """The stored row, or (profiles) udun's default."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_limits).where(_l.scope == scope, _l.subject == subject,
                                                     _l.currency == currency)).first()
        if row is not None:
            return _limit(row)
        default = DEFAULT_LIMITS.get((subject, currency)) if scope == "profile" else None
        return Limit("profile", subject, currency, *default) if default else None

    @translated
    def find(self, scope: str | None = None, subject: str | None = None) -> list[Limit]:
        """Stored rows (and the defaults no row replaced), by scope, subject, currency."""
        stmt = select(_limits).order_by(_l.scope.desc(), _l.subject, _l.currency)
        if scope is not None:
            stmt = stmt.where(_l.scope == scope)
        if subject is not None:
            stmt = stmt.where(_l.subject == subject)
        with self.engine.connect() as conn:
            rows = [_limit(r) for r in conn.execute(stmt)]
        stored = {(r.scope, r.subject, r.currency) for r in rows}
        defaults = [Limit("profile", p, c, *v) for (p, c), v in sorted(DEFAULT_LIMITS.items())
                    if ("profile", p, c) not in stored and scope in (None, "profile") and subject in (None, p)]
        return defaults + rows

    def put(self, limit: Limit, now: datetime, actor: str) -> Limit:
        """Set (replace) a profile's or customer's limits in a currency; audited."""
        with db_errors(), self.engine.begin() as conn:
            conn.execute(delete(_limits).where(_l.scope == limit.scope, _l.subject == limit.subject,
                                               _l.currency == limit.currency))
            conn.execute(insert(_limits).values(scope=limit.scope, subject=limit.subject, currency=limit.currency,
                                                per_payment=limit.per_payment, per_day=limit.per_day,
                                                set_by=actor, set_at=now))
            append(conn, action="limit-set", actor=actor, subject=f"limits/{limit.scope}/{limit.subject}",
                   details={"currency": limit.currency, "per_payment": limit.per_payment,
                            "per_day": limit.per_day, "unit": "hundredths"}, now=now)
        got = self.get(limit.scope, limit.subject, limit.currency)
        assert got is not None
        return got

    def remove(self, scope: str, subject: str, currency: str, now: datetime, actor: str) -> bool:
        """Drop a stored row (a customer's own limits: the profile's apply again)."""
        with db_errors(), self.engine.begin() as conn:
            gone = conn.execute(delete(_limits).where(_l.scope == scope, _l.subject == subject,
                                                      _l.currency == currency)).rowcount == 1
            if gone:
                append(conn, action="limit-remove", actor=actor, subject=f"limits/{scope}/{subject}",
                       details={"currency": currency}, now=now)
            return gone

    @translated
    def usage(self, customer: str, limit: int = 31) -> list[tuple[str, str, int, int]]:
        """(day, currency, used hundredths, payments), newest day first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_u.day, _u.currency, _u.used, _u.payments)
                                .where(_u.customer_id == customer).order_by(_u.day.desc(), _u.currency).limit(limit))
            return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]


def _limit(row: Any) -> Limit:
    return Limit(row.scope, row.subject, row.currency, row.per_payment, row.per_day, row.set_by, opt_utc(row.set_at))
