"""Key and subject policy at issuance (issue 10): certificates remember their public key's
SPKI hash; keys revoked for keyCompromise are blocked for ever.

Revision ID: 0005
Revises: 0004
"""
from alembic import op  # noqa: F401

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
