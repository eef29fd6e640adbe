"""Time is an input: code takes a Clock so tests can inject one."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(timezone.utc)


def fixed(moment: datetime) -> Clock:
    """A clock stuck at ``moment`` (tests)."""
    return lambda: moment
