"""A throwaway PostgreSQL server for the PostgreSQL and three-node figures.

tests/pgserver.py's server with other settings: the tests' server turns fsync and
full_page_writes off (nothing of a test run must outlive it), which would flatter
PostgreSQL against SQLite. Here the server keeps fsync and full_page_writes on
and turns only synchronous_commit off: a commit does not wait for its WAL flush, which is
what SQLite in WAL mode with synchronous=NORMAL (udun's setting) does too — both may lose
the last commits on a power loss, neither is corrupted by one. (README recommends
synchronous commit in production, for answered evidence to survive a power loss; that
costs a WAL flush per commit, on PostgreSQL and on SQLite with synchronous=FULL alike.)

The cluster lives in a temporary directory of its own (the bench's home is 0700 root,
which the `postgres` user could not enter).
"""
from __future__ import annotations

from tests.pgserver import USER, ThrowawayPostgres

from bench.measure import log

__all__ = ["USER", "Postgres"]

SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "synchronous_commit": "off",    # = SQLite WAL + synchronous=NORMAL; fsync stays on
    "max_connections": "200",
    "shared_buffers": "128MB",
}


class Postgres(ThrowawayPostgres):
    """``start()`` -> the admin URL; ``database(name)`` -> a new database's URL; ``stop()``."""

    def __init__(self) -> None:
        super().__init__(SETTINGS, prefix="udun-bench-pg-")

    def start(self) -> str:
        url = super().start()
        log(f"PostgreSQL on port {self.port} ({', '.join(f'{k}={v}' for k, v in SETTINGS.items())})")
        return url
