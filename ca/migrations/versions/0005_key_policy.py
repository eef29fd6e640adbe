"""Key and subject policy at issuance (issue 10): certificates remember their public key's
SPKI hash; keys revoked for keyCompromise are blocked for ever.

- ``certificates.spki_sha256``: SHA-256 hex of the certificate's SubjectPublicKeyInfo DER
  (as ca.policy re-encodes a requested key), indexed; filled here for every row that has
  its DER. Rows still pending (no DER) keep NULL; a failed row never had a key certified.
- ``blocked_keys``: one row per public key revoked for keyCompromise, with the serial that
  caused it. Filled here from certificates revoked for keyCompromise before this revision
  (their other certificates on the same key are left as they are: no status changes here).

Revision ID: 0005
Revises: 0004
"""
import hashlib
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BATCH = 500

_certs = sa.table(
    "certificates",
    sa.column("serial", sa.String),
    sa.column("der", sa.LargeBinary),
    sa.column("spki_sha256", sa.String),
    sa.column("status", sa.String),
    sa.column("revocation_reason", sa.String),
    sa.column("revoked_at", sa.DateTime(timezone=True)),
)
_blocked = sa.table(
    "blocked_keys",
    sa.column("spki_sha256", sa.String),
    sa.column("reason", sa.String),
    sa.column("blocked_at", sa.DateTime(timezone=True)),
    sa.column("serial", sa.String),
)


def spki_sha256(cert_der: bytes) -> str | None:
    """The hash ca.store keys certificates by, from a certificate's DER; None if unreadable."""
    from asn1crypto import x509
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import serialization

    try:
        key = cx509.load_der_x509_certificate(cert_der).public_key()
        spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    except Exception:  # noqa: BLE001  a key type cryptography does not load: the bytes as certified
        try:
            spki = x509.Certificate.load(cert_der)["tbs_certificate"]["subject_public_key_info"].dump()
        except Exception:  # noqa: BLE001  not a certificate at all: left NULL
            return None
    return hashlib.sha256(spki).hexdigest()


def _fill(conn: Any) -> None:
    """Hash every certificate with a DER, BATCH rows at a time in serial order."""
    c = _certs.c
    last = ""
    while True:
        rows = conn.execute(
            sa.select(c.serial, c.der).where(c.der.is_not(None), c.serial > last).order_by(c.serial).limit(BATCH)
        ).all()
        if not rows:
            return
        updates = [{"s": serial, "h": spki_sha256(bytes(der))} for serial, der in rows]
        updates = [u for u in updates if u["h"] is not None]
        if updates:
            conn.execute(_certs.update().where(c.serial == sa.bindparam("s")).values(spki_sha256=sa.bindparam("h")),
                         updates)
        last = rows[-1][0]


def _block_compromised(conn: Any) -> None:
    """A blocked key for every key already revoked for keyCompromise (its first such revocation)."""
    c = _certs.c
    first: dict[str, tuple[Any, str]] = {}
    for serial, spki, at in conn.execute(
            sa.select(c.serial, c.spki_sha256, c.revoked_at)
            .where(c.status == "revoked", c.revocation_reason == "keyCompromise", c.spki_sha256.is_not(None))
            .order_by(c.revoked_at, c.serial)):
        first.setdefault(spki, (at if at is not None else datetime.now(timezone.utc), serial))
    if first:
        conn.execute(_blocked.insert(), [{"spki_sha256": spki, "reason": "keyCompromise", "blocked_at": at,
                                          "serial": serial} for spki, (at, serial) in first.items()])


def upgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("spki_sha256", sa.String(64), nullable=True))
        batch.create_index("ix_certificates_spki_sha256", ["spki_sha256"])
    op.create_table(
        "blocked_keys",
        sa.Column("spki_sha256", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("serial", sa.String(42), sa.ForeignKey("certificates.serial"), nullable=True),
    )
    conn = op.get_bind()
    _fill(conn)
    _block_compromised(conn)


def downgrade() -> None:
    op.drop_table("blocked_keys")
    # A plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35, PostgreSQL): recreating the
    # certificates table would trip the foreign keys that point at it.
    with op.batch_alter_table("certificates", recreate="never") as batch:
        batch.drop_index("ix_certificates_spki_sha256")
        batch.drop_column("spki_sha256")
