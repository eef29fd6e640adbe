"""Time is an input: code takes a Clock so tests can inject one."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(timezone.utc)


def rfc3339(moment: datetime) -> str:
    """An aware UTC time as RFC 3339 with "Z" (microseconds kept when there are any): how
    every JSON answer and report of udun writes times."""
    return moment.isoformat().replace("+00:00", "Z")


def fixed(moment: datetime) -> Clock:
    """A clock stuck at ``moment`` (tests)."""
    return lambda: moment
