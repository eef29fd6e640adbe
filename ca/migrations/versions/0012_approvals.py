"""Dual control (双人认证, issue 12 point 3): approval policies, requests and their votes.

A sensitive action asked for through the admin API is stored as a request (the action, its
parameters and their SHA-256) and runs only once enough other operators approved it; one
rejection or its expiry ends it. Policies not in the table are udun's defaults
(ca.approvals.DEFAULT_POLICIES).

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approval_policies",
        sa.Column("action", sa.String(32), primary_key=True),
        sa.Column("approvals", sa.Integer, nullable=False),
        sa.Column("roles", sa.String(128), nullable=False),
        sa.Column("expires_hours", sa.Integer, nullable=False),
        sa.Column("threshold", sa.Integer, nullable=True),
        sa.Column("profiles", sa.String(256), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("params_sha256", sa.String(64), nullable=False),
        sa.Column("requester", sa.String(128), nullable=False),
        sa.Column("required", sa.Integer, nullable=False),
        sa.Column("roles", sa.String(128), nullable=False),
        sa.Column("approved", sa.Integer, nullable=False, server_default="0"),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.Text, nullable=True),
        sa.Index("ix_approvals_state", "state", "created_at"),
    )
    op.create_table(
        "approval_votes",
        sa.Column("approval_id", sa.String(32), sa.ForeignKey("approvals.id"), primary_key=True),
        sa.Column("operator", sa.String(128), primary_key=True),
        sa.Column("vote", sa.String(8), nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("approval_votes", "approvals", "approval_policies"):
        op.drop_table(table)
