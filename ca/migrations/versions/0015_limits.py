"""Transaction limits (交易限额, issue 13 point 2).

``limits``: a profile's or a customer's limits per currency, in hundredths (per payment,
per day; NULL: not set at this level). ``limit_usage``: what a customer paid on a day (in
the limits' time zone), reserved in the same transaction as the evidence record.

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "limits",
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("subject", sa.String(64), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("per_payment", sa.BigInteger, nullable=True),
        sa.Column("per_day", sa.BigInteger, nullable=True),
        sa.Column("set_by", sa.String(128), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "limit_usage",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("used", sa.BigInteger, nullable=False),
        sa.Column("payments", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("limit_usage")
    op.drop_table("limits")
