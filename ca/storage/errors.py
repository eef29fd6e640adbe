"""The one translation of database failures into PkiError, at the storage boundary.

Every store method runs under it (``translated``, or ``db_errors`` around a block), and
the raw driver path (ca.storage.raw) hands its driver errors to ``pki_error`` too:

- a missing table (SQLite "no such table", PostgreSQL "... does not exist"): NOT_INITIALISED,
  "the database has no CA tables: run `udun ca init`";
- an integrity violation (a unique key, a foreign key): re-raised as it is, for the caller
  that expects it (a serial taken, a replayed payment), or CONFLICT with the caller's
  message when it gives one (``db_errors(conflict=...)``);
- any other driver failure (locked, gone, unreadable file, connection lost): UNAVAILABLE,
  "the database is not available".

At start-up the migration runner cannot open the database at all: BAD_INPUT naming the
driver's reason (``cannot_open``), since UDUN_DATABASE_URL is then what to check.

Other messages never carry SQL, parameters or the driver's text; the driver's exception is the
PkiError's ``__cause__``.
"""
from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from pkicore.errors import ErrorKind, PkiError

NOT_AVAILABLE = "the database is not available"


def _missing_table(e: BaseException) -> bool:
    text = str(getattr(e, "orig", None) or e)        # SQLAlchemy wraps the driver's exception
    return "no such table" in text or "does not exist" in text


def pki_error(e: BaseException, what: str = "CA") -> PkiError:
    """The PkiError for a driver failure that is not an integrity violation."""
    if _missing_table(e):
        return PkiError(ErrorKind.NOT_INITIALISED, f"the database has no {what} tables: run `udun ca init`")
    return PkiError(ErrorKind.UNAVAILABLE, NOT_AVAILABLE)


def cannot_open(e: OperationalError) -> PkiError:
    """The migration runner's error: the driver's first line, without SQL or parameters."""
    reason = str(e.orig).splitlines()[0][:200] if e.orig else type(e).__name__
    return PkiError(ErrorKind.BAD_INPUT, f"cannot open the database ({reason}); check UDUN_DATABASE_URL")


@contextmanager
def db_errors(what: str = "CA", conflict: str | None = None) -> Iterator[None]:
    """Translate SQLAlchemy's database errors raised in the block (see the module docstring)."""
    try:
        yield
    except IntegrityError as e:
        if conflict is None:
            raise
        raise PkiError(ErrorKind.CONFLICT, conflict) from e
    except DBAPIError as e:
        raise pki_error(e, what) from e


F = TypeVar("F", bound=Callable[..., Any])


def translated(method: F) -> F:
    """``db_errors()`` around a whole store method (a plain try: some are on hot paths)."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except IntegrityError:
            raise
        except DBAPIError as e:
            raise pki_error(e) from e
    return wrapper  # type: ignore[return-value]


def translated_as(what: str) -> Callable[[F], F]:
    """``translated`` naming other tables than the CA's in NOT_INITIALISED (the audit log's)."""
    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with db_errors(what):
                return method(*args, **kwargs)
        return wrapper  # type: ignore[return-value]
    return decorate
