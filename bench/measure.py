"""Timing helpers: run a callable for a fixed wall-clock time and report a rate."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable


def log(text: str) -> None:
    """Progress goes to stderr; stdout carries only the figures."""
    print(f"bench: {text}", file=sys.stderr, flush=True)


@dataclass
class Tally:
    """Operations done and seconds spent, summed over one or more timed runs."""

    ops: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    def add(self, other: "Tally") -> None:
        self.ops += other.ops
        self.seconds += other.seconds


def timed(fn: Callable[[], object], seconds: float, batch: int = 1) -> Tally:
    """Call ``fn`` in batches until ``seconds`` have passed; the clock is read per batch."""
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline:
        for _ in range(batch):
            fn()
        n += batch
        now = time.perf_counter()
    return Tally(n, now - start)


def batch_for(fn: Callable[[], object], target: float = 0.01) -> int:
    """A batch size that takes roughly ``target`` seconds (also warms ``fn`` up)."""
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    return max(1, min(1000, int(target / one)))


def interleaved(fns: dict[str, Callable[[], object]], seconds_each: float, rounds: int) -> dict[str, Tally]:
    """Alternate the callables in short rounds so that machine noise hits them alike."""
    batches = {name: batch_for(fn) for name, fn in fns.items()}
    for name, fn in fns.items():   # warm-up, not counted
        timed(fn, min(0.2, seconds_each), batches[name])
    tallies = {name: Tally() for name in fns}
    per_round = seconds_each / rounds
    for _ in range(rounds):
        for name, fn in fns.items():
            tallies[name].add(timed(fn, per_round, batches[name]))
    return tallies
