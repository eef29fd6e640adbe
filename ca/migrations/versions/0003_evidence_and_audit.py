"""Evidence records, replay protection, bank challenges, the hash-chained audit log.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signer_cert_sha256", sa.String(64), nullable=False),
        sa.Column("signer_serial", sa.String(42), nullable=False),
        sa.Column("tx_id", sa.String(128), nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("cms", sa.LargeBinary, nullable=False),
        sa.Column("stamped_cms", sa.LargeBinary, nullable=False),
        sa.Column("time_stamp", sa.LargeBinary, nullable=False),
        sa.Column("chain", sa.LargeBinary, nullable=False),
        sa.Column("revocation_kind", sa.String(8), nullable=False),
        sa.Column("revocation", sa.LargeBinary, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        # Replay protection: one payment (tx_id) per signer certificate, enforced by the
        # database so two processes racing with the same payment cannot both store it.
        sa.UniqueConstraint("signer_cert_sha256", "tx_id", name="uq_evidence_signer_tx"),
    )
    op.create_table(
        "challenges",
        sa.Column("value", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("evidence_id", sa.String(40), nullable=True),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cms", sa.LargeBinary, nullable=False),
    )
    # The audit sequence lives with the other shared counters; seeded so the first append
    # of two racing processes can always UPDATE (and so take the write lock) first.
    counters = sa.table("counters", sa.column("name", sa.String), sa.column("value", sa.BigInteger))
    op.bulk_insert(counters, [{"name": "audit_seq", "value": 0}])


def downgrade() -> None:
    op.execute("DELETE FROM counters WHERE name = 'audit_seq'")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_log")
    op.drop_table("challenges")
    op.drop_table("evidence")
