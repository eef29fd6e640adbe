"""Issue 11 point 4: Alembic upgrades from every earlier revision, with data in the database.

For every revision but the head (found in ca/migrations by Alembic's ScriptDirectory, so
a new revision cannot be missed): an empty database on the run's engine is upgraded to
it, given the rows the application wrote at that revision (tests/migration_data.py),
upgraded to head, and then holds exactly what the head expects (backfilled columns too),
its audit chain still verifies and the head's code reads it. And `udun db current` /
`udun db upgrade`. Runs on SQLite and on PostgreSQL (``--db postgresql``).
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import migration_data as md
from ca.storage.migrate import head_revision, revisions, schema_state, upgrade
from helpers import home_env, udun
from pkicore.errors import ErrorKind, PkiError

KNOWN = revisions()
HEAD = head_revision()
EARLIER = KNOWN[:-1]
UNREACHABLE = "postgresql+psycopg://u@127.0.0.1:1/x"


@pytest.fixture(scope="module")
def world() -> md.World:
    return md.make_world()


def test_revisions_are_one_chain_and_every_earlier_one_has_fixture_data() -> None:
    from alembic.script import ScriptDirectory

    from ca.storage.migrate import MIGRATIONS

    assert ScriptDirectory(str(MIGRATIONS)).get_heads() == [HEAD], "ca/migrations must have exactly one head"
    assert KNOWN[-1] == HEAD and len(set(KNOWN)) == len(KNOWN)
    missing = [r for r in EARLIER if r not in md.SEEDED]
    assert not missing, (f"revisions {missing} have no fixture data: add them to SEEDED in tests/migration_data.py "
                         "with rows for every table and column they have (a database made at them must upgrade)")
    assert set(md.SEEDED) <= set(KNOWN), f"SEEDED names unknown revisions: {set(md.SEEDED) - set(KNOWN)}"
    assert set(md.MADE_BY.values()) <= set(KNOWN)


# --- seeding a database at an earlier revision ----------------------------------------

def _insert(engine: sa.Engine, revision: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    """The seeded rows of every table the database has at ``revision``, with its columns then.

    Integer ``id`` keys are left to the database (as the application does), so
    PostgreSQL's sequences stay right; rows go one by one so ids follow the rows' order.
    """
    meta = sa.MetaData()
    with engine.begin() as conn:
        meta.reflect(conn)
        for table in meta.sorted_tables:
            if table.name == "alembic_version":
                continue
            seeded = rows.get(table.name)
            assert seeded, f"no fixture rows for table {table.name} at revision {revision}: add them"
            columns = set(table.columns.keys())
            pk = list(table.primary_key)
            if [c.name for c in pk] == ["id"] and isinstance(pk[0].type, sa.Integer):
                columns.discard("id")
            for row in seeded:
                lacking = columns - set(row)
                assert not lacking, f"fixture rows of {table.name} lack {sorted(lacking)} (revision {revision})"
                conn.execute(table.insert(), {k: row[k] for k in columns})
        audit_seq = md.seeded_audit_seq(revision, KNOWN)
        if audit_seq is not None:          # made by 0003: the application kept it at the log's length
            conn.execute(sa.text("UPDATE counters SET value = :v WHERE name = 'audit_seq'"), {"v": audit_seq})


def _normal(value: Any) -> Any:
    """One form for both engines: SQLite returns naive UTC datetimes, psycopg may give memoryview."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def _key(table: sa.Table) -> Any:
    names = [c.name for c in table.primary_key]
    return lambda row: tuple(str(row[n]) for n in names)


def _actual(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    from ca.storage.schema import metadata

    out = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = [{k: _normal(v) for k, v in r._mapping.items()} for r in conn.execute(sa.select(table))]
            out[table.name] = sorted(rows, key=_key(table))
    return out


def _expected(world: md.World, revision: str) -> dict[str, list[dict[str, Any]]]:
    from ca.storage.schema import metadata

    rows = md.expected(world, revision, KNOWN)
    assert set(rows) == set(metadata.tables), "tests/migration_data.py: expected() must cover every head table"
    return {t.name: sorted(({k: _normal(v) for k, v in r.items()} for r in rows[t.name]), key=_key(t))
            for t in metadata.sorted_tables}


def _differences(actual: dict[str, list[dict[str, Any]]],
                 expected: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Readable differences (table, row key, column), without dumping every DER."""
    out = []
    for table, rows in expected.items():
        got = actual[table]
        if len(got) != len(rows):
            out.append(f"{table}: {len(got)} rows, expected {len(rows)}: {[tuple(r.values())[:2] for r in got]}")
            continue
        for g, e in zip(got, rows):
            out.extend(f"{table} {tuple(e.values())[0]!r}.{k}: {g.get(k)!r:.90} != expected {e.get(k)!r:.90}"
                       for k in sorted(set(g) | set(e)) if g.get(k, KeyError) != e.get(k, KeyError))
    return out


def _schema_differences(engine: sa.Engine) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from ca.storage.schema import metadata

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(context, metadata))


def _audit_entries(engine: sa.Engine) -> list[Any]:
    from ca.auditlog import AuditEntry
    from ca.storage.schema import audit_log

    with engine.connect() as conn:
        return [AuditEntry(**r._mapping) for r in conn.execute(sa.select(audit_log).order_by(audit_log.c.seq))]


def _head_code_reads_it(engine: sa.Engine, world: md.World, revision: str) -> None:
    """The head's stores on the upgraded data: blocked key, replay lookup, the audit chain goes on."""
    from ca.audit_check import verify_log
    from ca.storage import audit
    from ca.storage.evidence import EvidenceStore
    from ca.storage.store import Store

    store = Store(engine)
    try:
        blocked = store.blocked_key(world.keys["carol"].public_key_der)
        if md.since(revision, "0002", KNOWN):        # revoked for keyCompromise: blocked (0005 backfills it)
            assert blocked is not None and (blocked[0], blocked[2]) == ("keyCompromise", "s03")
        else:
            assert blocked is None
        alice = md.spki(world.keys["alice"].public_key_der)
        bank = 1 if md.since(revision, "0010", KNOWN) else None          # NULL: from before banks (0010)
        first = EvidenceStore(store).first_record(bank, alice, "T1")
        assert first == ("ev_1" if md.since(revision, "0003", KNOWN) else None)
    finally:
        store.raw.close()

    entries = _audit_entries(engine)
    seeded = md.seeded_audit_seq(revision, KNOWN) or 0
    verdict = verify_log(entries, [], [])
    assert verdict.ok and verdict.entries == seeded, verdict.problems
    with engine.begin() as conn:
        added = audit.append(conn, action="verify", actor="pytest", subject="after upgrade", details={"from": revision},
                             now=datetime.now(UTC))
    assert added.seq == seeded + 1
    verdict = verify_log(_audit_entries(engine), [], [])
    assert verdict.ok and verdict.entries == seeded + 1, verdict.problems


def test_evidence_values_are_compressed_with_lz4_on_postgresql(world: md.World, empty_db: sa.Engine) -> None:
    """0009: a record written after it is lz4 in every large column (PostgreSQL: pglz was a
    tenth of a verify's server CPU); downgrade puts the columns back to the default."""
    if empty_db.dialect.name != "postgresql":
        pytest.skip("SQLite does not compress values: 0009 does nothing there")
    engine = empty_db
    upgrade(engine)
    _insert(engine, HEAD, md.seed(world, HEAD, KNOWN))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                                    "WHERE name = 'default_toast_compression'")).scalar(), "this server has no lz4"
        settings = dict(conn.execute(sa.text(
            "SELECT attname, attcompression FROM pg_attribute WHERE attrelid = 'evidence'::regclass "
            "AND attname IN ('stamped_cms', 'time_stamp', 'report', 'cms', 'chain', 'revocation')")).all())
        used = {c for (c,) in conn.execute(sa.text(
            "SELECT DISTINCT pg_column_compression(stamped_cms) FROM evidence")).all()}
    assert settings == dict.fromkeys(settings, "l") and len(settings) == 6, settings
    assert used <= {"lz4", None} and "lz4" in used, used       # None: a value under the TOAST threshold
    from ca.storage.migrate import alembic

    with engine.begin() as conn:
        alembic(conn, "downgrade", "0008")
    with engine.connect() as conn:
        assert {a for (a,) in conn.execute(sa.text(
            "SELECT DISTINCT attcompression FROM pg_attribute WHERE attrelid = 'evidence'::regclass "
            "AND attnum > 0"))} == {""}


@pytest.mark.parametrize("revision", EARLIER)
def test_upgrade_to_head_from_a_revision_with_data(revision: str, world: md.World, empty_db: sa.Engine) -> None:
    if revision not in md.SEEDED:
        pytest.fail(f"revision {revision} has no fixture data: add it to SEEDED in tests/migration_data.py")
    engine = empty_db
    assert upgrade(engine, revision) == (None, revision)
    _insert(engine, revision, md.seed(world, revision, KNOWN))
    assert schema_state(engine) == (revision, HEAD)

    assert upgrade(engine) == (revision, HEAD)
    assert schema_state(engine) == (HEAD, HEAD)
    assert _differences(_actual(engine), _expected(world, revision)) == []
    assert _schema_differences(engine) == []
    _head_code_reads_it(engine, world, revision)
    assert upgrade(engine) == (HEAD, HEAD)          # again: nothing to do


def test_upgrade_refuses_a_revision_it_does_not_know_and_never_goes_down(empty_db: sa.Engine) -> None:
    engine = empty_db
    assert schema_state(engine) == (None, HEAD)
    assert upgrade(engine) == (None, HEAD)
    with pytest.raises(PkiError) as err:
        upgrade(engine, KNOWN[0])
    assert err.value.kind is ErrorKind.CONFLICT and "never downgrades" in err.value.message
    with pytest.raises(PkiError) as err:
        upgrade(engine, "nonsense")
    assert err.value.kind is ErrorKind.BAD_INPUT and "unknown revision 'nonsense'" in err.value.message

    with engine.begin() as conn:                     # as a newer udun would leave it
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    assert schema_state(engine) == ("9999", HEAD)
    with pytest.raises(PkiError) as err:
        upgrade(engine)
    assert err.value.kind is ErrorKind.CONFLICT
    assert "revision 9999, which this udun does not know" in err.value.message
    assert schema_state(engine) == ("9999", HEAD)    # left as it was


# --- the revisions' downgrades (operators' escape hatch; `udun db upgrade` never goes down)

def _structure(engine: sa.Engine) -> dict[str, Any]:
    """Tables with their columns, indexes, unique constraints and foreign keys (reflected)."""
    insp = sa.inspect(engine)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        out[table] = (
            sorted((c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)),
            sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(table)),
            sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table)),
            sorted((tuple(f["constrained_columns"]), f["referred_table"]) for f in insp.get_foreign_keys(table)),
        )
    return out


@pytest.mark.parametrize("revision", EARLIER)
def test_downgrade_from_head_gives_back_the_revision_with_its_data(revision: str, world: md.World,
                                                                   empty_db: sa.Engine) -> None:
    from ca.storage.migrate import alembic

    engine = empty_db
    upgrade(engine, revision)
    _insert(engine, revision, md.seed(world, revision, KNOWN))
    structure, rows = _structure(engine), _snapshot(engine)
    upgrade(engine)
    with engine.begin() as conn:
        alembic(conn, "downgrade", revision)
    assert schema_state(engine) == (revision, HEAD)
    assert _structure(engine) == structure
    assert _snapshot(engine) == rows
    assert upgrade(engine) == (revision, HEAD)      # and up again, to the same head data
    assert _differences(_actual(engine), _expected(world, revision)) == []


# --- a revision that fails: nothing of the upgrade stays ---------------------------------

BROKEN = '''"""A revision that fails on the data after its DDL (tests/ca/test_migrations.py only)."""
import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("broken", sa.Column("id", sa.Integer, primary_key=True))
    with op.batch_alter_table("certificates", recreate="never") as batch:
        batch.add_column(sa.Column("broken", sa.Text, nullable=True))
    op.execute("INSERT INTO counters (name, value) VALUES ('broken', NULL)")
'''


@pytest.fixture()
def broken_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """ca/migrations plus a revision 9001 after the head that fails on its data."""
    from ca.storage import migrate

    copy = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "versions" / "9001_broken.py").write_text(BROKEN.replace("{head}", HEAD))
    monkeypatch.setattr(migrate, "MIGRATIONS", copy)
    migrate._known.cache_clear()
    yield "9001"
    monkeypatch.undo()
    migrate._known.cache_clear()


def _snapshot(engine: sa.Engine) -> dict[str, tuple[list[str], list[str]]]:
    """Every table's columns and rows, as they are (reflected)."""
    meta = sa.MetaData()
    with engine.connect() as conn:
        meta.reflect(conn)
        return {t.name: (sorted(t.columns.keys()),
                         sorted(repr(tuple(_normal(v) for v in r)) for r in conn.execute(sa.select(t))))
                for t in meta.sorted_tables}


def test_a_failing_revision_leaves_the_database_as_it_was(world: md.World, empty_db: sa.Engine,
                                                          broken_head: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # From 0004 the upgrade runs 0005 .. head (DDL and data migrations) before 9001 fails:
    # all of it must roll back, the DDL too (SQLite included: ca.storage.migrate._begin_ddl).
    engine, start = empty_db, "0004"
    assert upgrade(engine, start) == (None, start)
    _insert(engine, start, md.seed(world, start, KNOWN))
    before = _snapshot(engine)
    with pytest.raises(PkiError) as err:
        upgrade(engine)
    assert err.value.kind is ErrorKind.INTERNAL
    assert err.value.message.startswith(f"the upgrade from revision {start} to {broken_head} failed (")
    assert err.value.message.endswith(f"the database is left at {start}")
    assert schema_state(engine) == (start, broken_head)
    assert _snapshot(engine) == before            # no blocked_keys, no broken table or column

    from ca.storage import migrate                # the real revisions again: the same database upgrades

    monkeypatch.undo()
    migrate._known.cache_clear()
    assert upgrade(engine) == (start, HEAD)
    assert _differences(_actual(engine), _expected(world, start)) == []


# --- the CLI -----------------------------------------------------------------------------

def _out(r: Any) -> str:
    return r.stdout.decode() + r.stderr.decode()


def test_cli_db_current_and_upgrade(tmp_path: Path) -> None:
    env = {"UDUN_HOME": str(tmp_path)}
    r = udun("db", "current", env=env)
    assert r.returncode == 0, _out(r)
    assert "current: none (empty database)" in r.stdout.decode() and f"head:    {HEAD}" in r.stdout.decode()
    r = udun("db", "current", "--json", env=env)
    assert json.loads(r.stdout) == {"current": None, "head": HEAD, "up_to_date": False}

    r = udun("db", "upgrade", "--to", KNOWN[0], env=env)
    assert r.returncode == 0 and f"upgraded none (empty database) -> {KNOWN[0]}" in _out(r), _out(r)
    r = udun("db", "upgrade", env=env)
    assert r.returncode == 0 and f"upgraded {KNOWN[0]} -> {HEAD}" in _out(r), _out(r)
    r = udun("db", "upgrade", env=env)
    assert r.returncode == 0 and f"already at {HEAD} (head): nothing to do" in _out(r), _out(r)
    r = udun("db", "current", "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout) == {"current": HEAD, "head": HEAD, "up_to_date": True}
    r = udun("db", "current", env=env)
    assert "up to date" in r.stdout.decode()

    r = udun("db", "upgrade", "--to", KNOWN[0], env=env)
    assert r.returncode == 2 and "udun: error [conflict]:" in r.stderr.decode() and "never downgrades" in _out(r)

    # A database a newer udun migrated: shown, refused, with a stable code.
    url = home_env({**env}).get("UDUN_DATABASE_URL") or f"sqlite:///{tmp_path / 'udun.db'}"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    r = udun("db", "current", "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout) == {"current": "9999", "head": HEAD, "up_to_date": False}
    r = udun("db", "upgrade", env=env)
    assert r.returncode == 2, _out(r)
    assert "udun: error [conflict]: the database is at revision 9999, which this udun does not know" in r.stderr.decode()
    assert "Traceback" not in r.stderr.decode()


@pytest.mark.parametrize("command", [("db", "current"), ("db", "current", "--json"), ("db", "upgrade")])
def test_cli_db_on_an_unreachable_database(tmp_path: Path, command: tuple[str, ...]) -> None:
    r = udun(*command, env={"UDUN_HOME": str(tmp_path), "UDUN_DATABASE_URL": UNREACHABLE})
    err = r.stderr.decode()
    assert r.returncode == 2, _out(r)
    assert err.startswith("udun: error [bad-input]: cannot open the database (") and "check UDUN_DATABASE_URL" in err
    assert "Traceback" not in err and r.stdout == b""


def test_cli_db_help() -> None:
    r = udun("db", "--help")
    assert r.returncode == 0 and "current" in r.stdout.decode() and "upgrade" in r.stdout.decode()
    r = udun("db", "upgrade", "--help")
    assert r.returncode == 0 and "--to REV" in r.stdout.decode()
