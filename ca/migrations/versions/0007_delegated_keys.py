"""The CA's own delegated keys (OCSP responder, TSA) and every certificate they had (issue 10).

Relying-party code accepts a responder or TSA certificate of our issuing CA only when it
is recorded here: a delegated certificate made for any other key is never trusted.
The current ``ocsp`` and ``tsa`` rows of ``authorities`` (made by udun itself) seed it.

Revision ID: 0007
Revises: 0006
"""
import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_authorities = sa.table(
    "authorities", sa.column("name", sa.String), sa.column("token_label", sa.String),
    sa.column("key_id", sa.String), sa.column("cert_der", sa.LargeBinary),
    sa.column("not_after", sa.DateTime(timezone=True)), sa.column("created_at", sa.DateTime(timezone=True)))


def upgrade() -> None:
    table = op.create_table(
        "delegated_keys",
        sa.Column("cert_sha256", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(32), nullable=False, index=True),         # ocsp | tsa
        sa.Column("token_label", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),                   # CKA_ID, hex
        sa.Column("cert_der", sa.LargeBinary, nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),  # key removed from the token
    )
    # Read through typed columns, not plain SQL text: SQLite keeps DateTime as text, and only
    # the column type turns it back into the datetime the insert below requires.
    rows = op.get_bind().execute(sa.select(_authorities).where(_authorities.c.name.in_(("ocsp", "tsa")))).fetchall()
    op.bulk_insert(table, [{"cert_sha256": hashlib.sha256(r.cert_der).hexdigest(), "name": r.name,
                            "token_label": r.token_label, "key_id": r.key_id, "cert_der": r.cert_der,
                            "not_after": r.not_after, "created_at": r.created_at, "destroyed_at": None}
                           for r in rows])


def downgrade() -> None:
    op.drop_table("delegated_keys")
