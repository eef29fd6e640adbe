"""Issue 11: what must come out of the database one at a time does, on SQLite and on
PostgreSQL (READ COMMITTED, where nothing but row locks and unique constraints serialise
transactions): audit sequence numbers and their hash chain, counters (CRL numbers, the
status version) from their first use, a challenge used once.

Each test starts eight threads at one barrier on a database of the run's engine.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import sqlalchemy as sa

THREADS, EACH = 8, 25


def _migrated(engine: sa.Engine) -> sa.Engine:
    from ca.storage.migrate import alembic

    with engine.begin() as conn:
        alembic(conn, "upgrade", "head")
    return engine


def _together(work: Callable[[int], Any]) -> list[Any]:
    """``work(i)`` on THREADS threads released at once; their results, or re-raise the first error."""
    barrier = threading.Barrier(THREADS)
    results: list[Any] = [None] * THREADS
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as e:  # noqa: BLE001  reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return results


def test_concurrent_audit_appends_make_one_chain(empty_db: sa.Engine) -> None:
    from ca.audit_check import verify_log
    from ca.auditlog import AuditEntry
    from ca.storage.audit import append
    from ca.storage.schema import audit_log

    engine = _migrated(empty_db)
    now = datetime.now(timezone.utc)

    def work(i: int) -> list[int]:
        seqs = []
        for n in range(EACH):
            with engine.begin() as conn:
                seqs.append(append(conn, action="test", actor=f"thread-{i}", subject=str(n), details={"n": n},
                                   now=now).seq)
        return seqs

    seqs = sorted(s for got in _together(work) for s in got)
    assert seqs == list(range(1, THREADS * EACH + 1))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(audit_log.c.seq, audit_log.c.at, audit_log.c.action, audit_log.c.actor,
                                      audit_log.c.subject, audit_log.c.details, audit_log.c.prev_hash,
                                      audit_log.c.hash).order_by(audit_log.c.seq)).all()
    verdict = verify_log([AuditEntry(*r) for r in rows], [], [])
    assert verdict.ok and verdict.entries == THREADS * EACH, verdict.problems


def test_a_new_counter_bumped_at_once_counts_every_bump(empty_db: sa.Engine) -> None:
    from ca.storage.counters import bump

    engine = _migrated(empty_db)

    def work(_: int) -> list[int]:
        out = []
        for _n in range(EACH):
            with engine.begin() as conn:
                out.append(bump(conn, "crl_number:99"))      # no row yet: the first bumps race to create it
        return out

    values = sorted(v for got in _together(work) for v in got)
    assert values == list(range(1, THREADS * EACH + 1))


def test_a_challenge_is_used_once_whoever_races(empty_db: sa.Engine) -> None:
    from ca.storage.evidence import USE_CHALLENGE
    from ca.storage.schema import banks, challenges

    engine = _migrated(empty_db)
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(sa.insert(banks), {"id": 7, "name": "race", "display_name": "Race", "created_at": now})
        conn.execute(sa.insert(challenges), {"value": "c" * 43, "created_at": now, "bank_id": 7,
                                             "expires_at": now + timedelta(minutes=5)})

    def work(i: int) -> int:
        with engine.begin() as conn:
            return int(conn.execute(USE_CHALLENGE, {"v": "c" * 43, "b": 7, "now": now,
                                                    "eid": f"ev_{i}"}).rowcount)

    assert sorted(_together(work)) == [0] * (THREADS - 1) + [1]
    with engine.connect() as conn:
        assert conn.execute(sa.select(challenges.c.evidence_id)).scalar() is not None


def test_crl_numbers_and_this_update_go_up_together(empty_db: sa.Engine) -> None:
    """Publishers racing: the CRL with the higher number never has the earlier thisUpdate
    (the store asks for the times once it holds the number; a clock read before that
    lock could be overtaken by a later reader that got the lower number)."""
    from ca.storage.store import NewAuthority, Store

    store = Store(_migrated(empty_db))
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    (authority,) = store.add_authorities([NewAuthority("issuing", "t", b"k", "ec-p256", "CN=t", b"der",
                                                       start + timedelta(days=1))], now=start)
    ticks = iter(range(10_000))
    lock = threading.Lock()

    def times() -> tuple[datetime, datetime]:
        with lock:                                   # a clock that moves on at every read
            at = start + timedelta(seconds=next(ticks))
        return at, at + timedelta(hours=1)

    def make(number: int, rows: Any, this_update: datetime, next_update: datetime) -> tuple[bytes, int]:
        return f"crl {number} {this_update.isoformat()}".encode(), sum(1 for _ in rows)

    def work(_: int) -> list[tuple[int, datetime]]:
        return [(r.number, r.this_update) for r in (store.publish_crl(authority.id, make, times)
                                                    for _n in range(EACH // 5))]

    published = sorted(p for got in _together(work) for p in got)
    assert [n for n, _ in published] == list(range(1, len(published) + 1))
    updates = [t for _, t in published]
    assert updates == sorted(updates) and len(set(updates)) == len(updates), published


def test_one_read_per_counter_holds_a_value_for_its_block_only(empty_db: sa.Engine) -> None:
    """A verification reads the status version once (its OCSP answer and the root CRL are
    as of one moment); a change made meanwhile is seen by the next one, and by other
    threads at once."""
    from ca.storage.counters import bump
    from ca.storage.store import Store

    store = Store(_migrated(empty_db))
    with empty_db.begin() as conn:
        bump(conn, "status_version")
    seen_elsewhere: list[int] = []
    with store.one_read_per_counter():
        first = store.counter("status_version")
        with empty_db.begin() as conn:
            bump(conn, "status_version")                 # a hold committed during the verification
        assert store.counter("status_version") == first
        other = threading.Thread(target=lambda: seen_elsewhere.append(store.counter("status_version")))
        other.start()
        other.join(timeout=30)
    assert seen_elsewhere == [first + 1]
    assert store.counter("status_version") == first + 1   # the next verification sees it
