"""An index on (spki_sha256, subject) for the one-subject-per-key check (issue 10).

Issuance asks whether another live certificate on the same key names another subject.
With the key-only index of 0005 that read every certificate on the key (a key renewed
many times, or the bench's one CSR, made issuance slow down as certificates piled up);
on (key, subject) it is two short index range reads: subjects below and above.

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # recreate="never": a plain CREATE/DROP INDEX; recreating certificates would trip the
    # foreign keys that point at it (see 0005).
    with op.batch_alter_table("certificates", recreate="never") as batch:
        batch.create_index("ix_certificates_spki_subject", ["spki_sha256", "subject"])
        batch.drop_index("ix_certificates_spki_sha256")


def downgrade() -> None:
    with op.batch_alter_table("certificates", recreate="never") as batch:
        batch.create_index("ix_certificates_spki_sha256", ["spki_sha256"])
        batch.drop_index("ix_certificates_spki_subject")
