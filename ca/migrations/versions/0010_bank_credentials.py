"""Banks, their API keys and TLS client certificates; evidence and challenges belong to the bank that made them (issue 12).

The verify, challenge and evidence routes need a bank's key from now on. An evidence record
names the bank whose call stored it, and replay protection becomes per bank: the unique key
moves from (signer key, tx_id) to (bank, signer key, tx_id), so a bank that holds someone
else's signed payment cannot burn its tx_id for the bank it was meant for. Records and
challenges stored before keep a NULL bank: no bank reads those records (operators still do,
through `udun evidence`), and no bank's payment can use those challenges (they expire in
minutes anyway).

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "banks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "bank_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("bank_id", sa.Integer, sa.ForeignKey("banks.id"), nullable=False, index=True),
        sa.Column("hash", sa.String(256), nullable=False),
        sa.Column("scopes", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replaced_by", sa.String(32), nullable=True),
    )
    op.create_table(
        "bank_certs",
        sa.Column("cert_sha256", sa.String(64), primary_key=True),
        sa.Column("bank_id", sa.Integer, sa.ForeignKey("banks.id"), nullable=False, index=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("scopes", sa.String(256), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("evidence") as batch:
        batch.add_column(sa.Column("bank_id", sa.Integer, nullable=True))
        batch.create_foreign_key("fk_evidence_bank", "banks", ["bank_id"], ["id"])
        batch.drop_constraint("uq_evidence_spki_tx", type_="unique")
        batch.create_unique_constraint("uq_evidence_bank_spki_tx", ["bank_id", "signer_spki_sha256", "tx_id"])
    with op.batch_alter_table("challenges") as batch:
        batch.add_column(sa.Column("bank_id", sa.Integer, nullable=True))
        batch.create_foreign_key("fk_challenges_bank", "banks", ["bank_id"], ["id"])
        batch.create_index("ix_challenges_bank_expires", ["bank_id", "expires_at"])


def downgrade() -> None:
    # Per-bank replay records may hold one tx_id of one key several times (once per bank);
    # going back to one per key would have to drop evidence: refused instead, saying why.
    evidence = sa.table("evidence", sa.column("signer_spki_sha256", sa.String), sa.column("tx_id", sa.String))
    twice = op.get_bind().execute(
        sa.select(evidence.c.tx_id).group_by(evidence.c.signer_spki_sha256, evidence.c.tx_id)
        .having(sa.func.count() > 1).limit(1)).first()
    if twice is not None:
        raise RuntimeError(f"cannot downgrade below 0010: tx_id {twice[0]} of one signer key was verified by "
                           "more than one bank, which revision 0009 cannot hold; no evidence was dropped")
    with op.batch_alter_table("challenges") as batch:
        batch.drop_index("ix_challenges_bank_expires")
        batch.drop_constraint("fk_challenges_bank", type_="foreignkey")
        batch.drop_column("bank_id")
    with op.batch_alter_table("evidence") as batch:
        batch.drop_constraint("uq_evidence_bank_spki_tx", type_="unique")
        batch.create_unique_constraint("uq_evidence_spki_tx", ["signer_spki_sha256", "tx_id"])
        batch.drop_constraint("fk_evidence_bank", type_="foreignkey")
        batch.drop_column("bank_id")
    op.drop_table("bank_certs")
    op.drop_table("bank_keys")
    op.drop_table("banks")
