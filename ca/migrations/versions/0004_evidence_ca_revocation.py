"""Evidence records keep the revocation data of the CA certificates of the path too.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # JSON [["crl"|"ocsp", base64 DER], ...], issuing CA first (ca.evidence_store). NULL in
    # records stored before this revision: a bundle export fills it from the CRL history.
    with op.batch_alter_table("evidence") as batch:
        batch.add_column(sa.Column("ca_revocation", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evidence") as batch:
        batch.drop_column("ca_revocation")
