"""PostgreSQL: the evidence record's large columns compressed with lz4 instead of pglz.

A verified payment's record is ~12 KB in six columns over PostgreSQL's 2 KB TOAST
threshold; pglz spent ~95 µs of server CPU on each record (DER compresses little), lz4
~5 µs for about the same size on disk (measured here: 210 against 117 µs of server CPU per
insert). That is server CPU every verify with evidence pays (make bench:
http_verify_evidence_postgresql_vs_sqlite_ratio). Values stored before keep their
compression (PostgreSQL reads both). SQLite does not compress: nothing to do there. A
server built without lz4 keeps pglz (the column setting is refused there).

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = ("content", "cms", "stamped_cms", "time_stamp", "chain", "revocation", "report", "ca_revocation")


def _lz4_here() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    return bool(bind.execute(sa.text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                                     "WHERE name = 'default_toast_compression'")).scalar())


def upgrade() -> None:
    if _lz4_here():
        for column in COLUMNS:
            op.execute(f"ALTER TABLE evidence ALTER COLUMN {column} SET COMPRESSION lz4")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for column in COLUMNS:
            op.execute(f"ALTER TABLE evidence ALTER COLUMN {column} SET COMPRESSION DEFAULT")
