"""Enrollment with activation codes (柜台激活码, issue 12 point 5).

An operator makes an enrollment for a customer (subject, profile, the payer accounts it is
for) and hands over a one-time code; only the code's slow hash is kept. The customer's
token-made CSR with the code gets the certificate once; five wrong codes lock it.

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enrollments",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("code_hash", sa.String(256), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("profile", sa.String(32), nullable=False),
        sa.Column("accounts", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("serial", sa.String(42), sa.ForeignKey("certificates.serial"), nullable=True),
        sa.Index("ix_enrollments_created", "created_at"),
    )


def downgrade() -> None:
    op.drop_table("enrollments")
