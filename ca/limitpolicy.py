"""Setting transaction limits (ca.limits): operators set a customer's, admins a profile's.

What raises a limit waits for a second operator through the admin API (the ``limit-raise``
policy): a profile's limit made higher (or taken away), or a customer's set above their
profile's. Lowering takes effect at once: it only restricts.
"""
from __future__ import annotations

from ca.customers import Customers, checked_id
from ca.limits import Limit, effective
from ca.profiles import REQUESTABLE
from ca.storage.limits import LimitStore
from ca.storage.store import Store
from pkicore.clock import Clock
from pkicore.errors import ErrorKind, PkiError
from pkicore.tx import valid_currency

SCOPES = ("profile", "customer")


def _more(after: int | None, before: int | None) -> bool:
    """Whether a limit of ``after`` allows more than one of ``before`` (None: no limit)."""
    if before is None:
        return False
    return after is None or after > before


def checked_currency(currency: object) -> str:
    if not isinstance(currency, str) or not valid_currency(currency):
        raise PkiError(ErrorKind.BAD_INPUT, "currency is an ISO 4217 code such as CNY", field="currency")
    return currency


class LimitPolicy:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = LimitStore(store)
        self.customers = Customers(store, clock)
        self.clock = clock

    def checked(self, scope: str, subject: str, currency: str, per_payment: int | None,
                per_day: int | None) -> Limit:
        if scope not in SCOPES:
            raise PkiError(ErrorKind.BAD_INPUT, f"scope is one of {', '.join(SCOPES)}", field="scope")
        if scope == "profile" and subject not in REQUESTABLE:
            raise PkiError(ErrorKind.BAD_INPUT, f"profile is one of {', '.join(REQUESTABLE)}", field="profile")
        if scope == "customer":
            self.customers.must_exist(checked_id(subject))
        if per_payment is None and per_day is None:
            raise PkiError(ErrorKind.BAD_INPUT, "give per_payment, per_day or both", field="per_payment")
        if per_payment is not None and per_day is not None and per_payment > per_day:
            raise PkiError(ErrorKind.BAD_INPUT, "per_payment cannot be more than per_day", field="per_payment")
        return Limit(scope, subject, checked_currency(currency), per_payment, per_day)

    def raises(self, new: Limit | None, *, scope: str | None = None, subject: str | None = None,
               currency: str | None = None, profile: str = "client") -> bool:
        """Whether ``new`` (None: the customer's own limits removed) allows more than what
        applies now: a profile's against its current limits, a customer's against their
        current effective limits (their own over the profile's). A currency with no limit
        at all is closed: any limit opens it."""
        scope = new.scope if new is not None else scope
        subject = new.subject if new is not None else subject
        currency = new.currency if new is not None else currency
        assert scope is not None and subject is not None and currency is not None
        if scope == "profile":
            before = effective(self.store.get("profile", subject, currency), None)
            after = effective(new, None)
        else:
            prof = self.store.get("profile", profile, currency)
            before = effective(prof, self.store.get("customer", subject, currency))
            after = effective(prof, new)
        if before.unset:
            return not after.unset
        return _more(after.per_payment, before.per_payment) or _more(after.per_day, before.per_day)

    def put(self, limit: Limit, *, actor: str) -> Limit:
        return self.store.put(limit, self.clock(), actor)

    def remove(self, scope: str, subject: str, currency: str, *, actor: str) -> None:
        """A customer's own limits go and the profile's apply again (through the admin API a
        removal that allows more waits for approval: ``raises(None, ...)``)."""
        if scope != "customer":
            raise PkiError(ErrorKind.BAD_INPUT, "only a customer's own limits are removed; set a profile's instead",
                           field="scope")
        if not self.store.remove(scope, checked_id(subject), checked_currency(currency), self.clock(), actor):
            raise PkiError(ErrorKind.NOT_FOUND, f"customer {subject} has no {currency} limits of their own")

    def find(self, scope: str | None = None, subject: str | None = None) -> list[Limit]:
        return self.store.find(scope, subject)

    def usage(self, customer: str, days: int = 31) -> list[tuple[str, str, int, int]]:
        return self.store.usage(self.customers.must_exist(checked_id(customer)), days)
