"""Rate limiting as pure data: GCRA (the generic cell rate algorithm, a token bucket kept as
one "next allowed" time per client), the clock passed in. O(1), one integer per client,
no background work: udun's workers stay single-threaded (PKCS#11 sessions, DESIGN.md),
which is why this is not the `limits` package, whose memory storage starts a timer thread.
Times are integer nanoseconds, so a burst is exactly ``count`` however long the clock has run.
"""
from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from pkicore.errors import ErrorKind, PkiError

_RATE = re.compile(r"(\d+)\s*/\s*(second|minute|hour)")
_SECONDS = {"second": 1, "minute": 60, "hour": 3600}
MAX_CLIENTS = 100_000           # clients remembered per limiter (the least recent are dropped)


def retry_seconds(wait: float) -> int:
    """A Retry-After value (RFC 9110 §10.2.3, whole seconds) for a wait: at least 1."""
    return max(1, math.ceil(wait))


@dataclass(frozen=True)
class Rate:
    """``count`` requests per ``per`` seconds, as a burst of ``count`` at once at most."""

    count: int
    per: int

    @classmethod
    def parse(cls, text: str, where: str) -> "Rate | None":
        """``100/second``, ``6000/minute``, ...; ``0`` or ``off`` for no limit."""
        raw = text.strip().lower()
        if raw in ("0", "off"):
            return None
        found = _RATE.fullmatch(raw)
        if found is None or int(found.group(1)) < 1:
            raise PkiError(ErrorKind.BAD_INPUT, f"{where} is a rate such as 100/second, 6000/minute or 0 (no limit)")
        return cls(int(found.group(1)), _SECONDS[found.group(2)])

    def __str__(self) -> str:
        unit = next(u for u, s in _SECONDS.items() if s == self.per)
        return f"{self.count}/{unit}"


class Limiter:
    """GCRA over many clients: ``wait(client)`` is 0.0 when the request may go (and is
    counted), else the seconds until it could (and it is not counted)."""

    def __init__(self, rate: Rate, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.interval = max(1, rate.per * 1_000_000_000 // rate.count)     # one request's share, ns
        self.tolerance = (rate.count - 1) * self.interval                 # a full burst at once
        self.clock = clock
        self._next: OrderedDict[str, int] = OrderedDict()

    def wait(self, client: str) -> float:
        now = self.clock()
        start = max(self._next.get(client, now), now)
        early = start - now - self.tolerance
        if early > 0:
            return early / 1e9
        self._next[client] = start + self.interval
        self._next.move_to_end(client)
        if len(self._next) > MAX_CLIENTS:
            self._next.popitem(last=False)
        return 0.0
