"""Certificate status (revoke, hold, release), its history, counters and CRLs.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="good"))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revocation_reason", sa.String(32), nullable=True))
        batch.add_column(sa.Column("invalidity_date", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_certificates_status", ["authority_id", "status"])
    op.create_table(
        "status_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("serial", sa.String(42), sa.ForeignKey("certificates.serial"), nullable=False, index=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("invalidity_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "crls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("authority_id", sa.Integer, sa.ForeignKey("authorities.id"), nullable=False),
        sa.Column("number", sa.BigInteger, nullable=False),
        sa.Column("this_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entries", sa.Integer, nullable=False),
        sa.Column("der", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("authority_id", "number", name="uq_crls_authority_number"),
    )


def downgrade() -> None:
    op.drop_table("crls")
    op.drop_table("counters")
    op.drop_table("status_events")
    with op.batch_alter_table("certificates") as batch:
        batch.drop_index("ix_certificates_status")
        batch.drop_column("invalidity_date")
        batch.drop_column("revocation_reason")
        batch.drop_column("revoked_at")
        batch.drop_column("status")
