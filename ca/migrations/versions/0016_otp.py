"""Step-up one-time passwords (宝令 / 手机宝令, issue 13 point 3).

An RFC 6238 TOTP credential of a customer: its secret encrypted (AES-256-GCM under the OTP
key, ca.otpkey), the time step of the last code accepted (a code is accepted once: a
conditional UPDATE in the evidence transaction), consecutive failures and the lock.

Revision ID: 0016
Revises: 0015
"""
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "otp_credentials",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customers.id"), nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("period", sa.Integer, nullable=False),
        sa.Column("digits", sa.Integer, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_step", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    # One active credential per customer, whatever two enrollments at once do.
    op.create_index("uq_otp_active_customer", "otp_credentials", ["customer_id"], unique=True,
                    sqlite_where=sa.text("revoked_at IS NULL"), postgresql_where=sa.text("revoked_at IS NULL"))


def downgrade() -> None:
    op.drop_index("uq_otp_active_customer", "otp_credentials")
    op.drop_table("otp_credentials")
