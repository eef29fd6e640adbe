"""Issue 10: one storage layer. The schema is stated once (ca.storage.schema) and agrees with
the migrations; the raw driver path runs the same Core statements; one error translation."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from pkicore.errors import ErrorKind, PkiError

NO_TABLES = "the database has no CA tables: run `udun ca init`"


def test_the_schema_is_what_the_migrations_make(empty_db: sa.Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from ca.storage.migrate import alembic
    from ca.storage.schema import metadata

    engine = empty_db
    with engine.begin() as conn:
        alembic(conn, "upgrade", "head")
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(context, metadata) == []


def _raw_statements() -> list[sa.ClauseElement]:
    from ca.storage import audit, counters, evidence, store

    return [store.INSERT_INTENT, store.MARK_ISSUED, store.BLOCKED, store.SAME_KEY_OTHER_SUBJECT,
            store.AUTHORITY_CERTS, store.KEY_LOCK, evidence.INSERT_EVIDENCE, evidence.USE_CHALLENGE,
            audit.NEXT, audit.INSERT, counters.READ]


@pytest.mark.parametrize("dialect", [sqlite.pysqlite.dialect(paramstyle="named"), postgresql.psycopg.dialect()],
                         ids=["sqlite", "postgresql"])
def test_raw_statements_compile_from_the_tables(dialect: sa.Dialect) -> None:
    from ca.storage.raw import compile_raw

    for stmt in _raw_statements():
        raw = compile_raw(stmt, dialect)
        assert "POSTCOMPILE" not in raw.sql and "?" not in raw.sql, raw.sql
    intent = compile_raw(_raw_statements()[0], dialect)
    assert intent.defaults == {"state": "pending", "status": "good"}


def test_expanding_parameters_are_refused_on_the_raw_path() -> None:
    from ca.storage.raw import compile_raw
    from ca.storage.schema import certificates

    with pytest.raises(ValueError):
        compile_raw(sa.select(certificates.c.serial).where(certificates.c.state.in_(("a", "b"))),
                    sqlite.pysqlite.dialect(paramstyle="named"))


def _empty_store(path: Path):  # type: ignore[no-untyped-def]
    from ca.storage.engine import sqlite_pragmas
    from ca.storage.store import Store

    engine = sa.create_engine(f"sqlite:///{path}")
    sa.event.listen(engine, "connect", sqlite_pragmas)
    return Store(engine)


def test_missing_tables_are_not_initialised_on_both_paths(empty_db: sa.Engine) -> None:
    from ca.storage.audit import AuditStore
    from ca.storage.delegated import DelegatedStore
    from ca.storage.evidence import EvidenceStore

    from ca.storage.store import Store

    store = Store(empty_db)
    now = datetime.now(timezone.utc)
    calls = [
        lambda: store.authority("issuing"),                       # Core
        lambda: store.certificate("ab"),
        lambda: store.counter("status_version"),                  # raw
        lambda: store.record_intent(serial="ab", authority_id=1, profile="client", subject="CN=x", requester="t",
                                    tbs_sha256="0" * 64, not_before=now, not_after=now, now=now,
                                    public_key_der=b"k", subject_der=b"0\x00"),
        lambda: EvidenceStore(store).ids(),
        lambda: DelegatedStore(store).recorded(),
    ]
    for call in calls:
        with pytest.raises(PkiError) as err:
            call()
        assert err.value.kind is ErrorKind.NOT_INITIALISED and err.value.message == NO_TABLES
    with pytest.raises(PkiError) as err:
        AuditStore(store).checkpoints()
    assert err.value.kind is ErrorKind.NOT_INITIALISED and "no audit tables" in err.value.message
    store.raw.close()
    store.engine.dispose()


def test_a_database_that_cannot_be_opened_is_unavailable_on_both_paths(tmp_path: Path) -> None:
    import os

    from ca.storage.store import Store

    if os.environ.get("UDUN_TEST_PG_ADMIN_URL"):              # a server nobody listens for
        store = Store(sa.create_engine("postgresql+psycopg://udun@127.0.0.1:1/udun",
                                       connect_args={"connect_timeout": 2}))
    else:                                                     # "unable to open database file"
        store = _empty_store(tmp_path / "no such directory" / "udun.db")
    for call in (lambda: store.certificate("ab"), lambda: store.counter("status_version")):
        with pytest.raises(PkiError) as err:
            call()
        assert err.value.kind is ErrorKind.UNAVAILABLE and err.value.message == "the database is not available"
    store.raw.close()
    store.engine.dispose()


def test_a_taken_authority_name_is_a_conflict(ca) -> None:  # type: ignore[no-untyped-def]
    from ca.storage.store import NewAuthority

    issuing = ca.store.authority("issuing")
    now = datetime.now(timezone.utc)
    with pytest.raises(PkiError) as err:
        ca.store.add_authorities([NewAuthority("issuing", "t", b"\x01", "ec-p256", issuing.subject,
                                               issuing.cert_der, now)], now)
    assert err.value.kind is ErrorKind.CONFLICT and err.value.message == "the CA is initialised already"


def test_a_postgresql_server_that_never_answers_is_unavailable_not_a_hang(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A server that takes the connection and says nothing: the connect gives up after
    PG_CONNECT_SECONDS (libpq would wait for ever), the store says the database is away."""
    import socket
    import time
    from dataclasses import replace

    from ca.storage import engine as engine_mod
    from ca.storage.store import Store
    from config.settings import load_settings

    monkeypatch.setattr(engine_mod, "PG_CONNECT_SECONDS", 1)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        settings = replace(load_settings(), database_url=f"postgresql+psycopg://udun@127.0.0.1:{port}/udun")
        store = Store(engine_mod.make_engine(settings))
        started = time.monotonic()
        with pytest.raises(PkiError) as err:
            store.counter("status_version")
        assert err.value.kind is ErrorKind.UNAVAILABLE and time.monotonic() - started < 10
        store.raw.close()
        store.engine.dispose()
    own = engine_mod.make_engine(replace(settings, database_url=settings.database_url + "?connect_timeout=3"))
    assert own.url.query["connect_timeout"] == "3"          # the operator's value is kept
    own.dispose()
