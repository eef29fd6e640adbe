"""Customers and account binding (issue 13 point 1).

A customer (the bank's customer number) has the payer accounts they may pay from; a
certificate is bound to one customer, by its SHA-256 (``serial`` too when it is one of this
CA's: a certificate of another trusted CA can be bound as well). Verification refuses a payment from an account its
signer's customer does not have. An account belongs to one customer only.

An enrollment that binds its certificate to a customer waits for a second operator's
approval (``approved_at``) when made through the admin API.

Data: an enrollment of 0013 that lists accounts becomes a customer ``ENR-<id>`` with those
accounts (the enrollment names it), and the certificate it gave is bound to it, as are that
certificate's renewals and re-keys (requester ``renewal:<serial>`` / ``rekey:<serial>``).
Enrollments never used that were cancelled, locked or have expired make no customer (they
would hold accounts for nobody). An account listed by two enrollments goes to the first.

Revision ID: 0014
Revises: 0013
"""
import json
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    customers = op.create_table(
        "customers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    accounts = op.create_table(
        "customer_accounts",
        sa.Column("account", sa.String(34), primary_key=True),
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customers.id"), nullable=False, index=True),
        sa.Column("added_by", sa.String(128), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    )
    bound = op.create_table(
        "certificate_customers",
        sa.Column("cert_sha256", sa.String(64), primary_key=True),
        sa.Column("serial", sa.String(42), sa.ForeignKey("certificates.serial"), nullable=True, unique=True),
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customers.id"), nullable=False, index=True),
        sa.Column("bound_by", sa.String(128), nullable=False),
        sa.Column("bound_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("enrollments") as batch:
        batch.add_column(sa.Column("customer_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True))

    conn = op.get_bind()
    certs = sa.table("certificates", sa.column("serial"), sa.column("cert_sha256"), sa.column("requester"),
                     sa.column("state"), sa.column("created_at", sa.DateTime(timezone=True)))
    enr = sa.table("enrollments", sa.column("id"), sa.column("subject"), sa.column("accounts"),
                   sa.column("created_by"), sa.column("created_at", sa.DateTime(timezone=True)),
                   sa.column("used_at", sa.DateTime(timezone=True)), sa.column("serial"),
                   sa.column("customer_id"), sa.column("approved_at", sa.DateTime(timezone=True)),
                   sa.column("locked_at", sa.DateTime(timezone=True)),
                   sa.column("expires_at", sa.DateTime(timezone=True)))
    # Enrollments made before dual control covered them count as approved when made.
    conn.execute(enr.update().values(approved_at=enr.c.created_at))
    taken: set[str] = set()
    now = datetime.now(timezone.utc)
    for row in conn.execute(sa.select(enr).order_by(enr.c.created_at)).all():
        expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=timezone.utc)
        if row.used_at is None and (row.locked_at is not None or expires <= now):
            continue                              # never used, and never will be
        listed = [a for a in json.loads(row.accounts) if a not in taken]
        if not listed:
            continue
        customer = f"ENR-{row.id}"
        conn.execute(customers.insert().values(id=customer, name=row.subject, created_by=row.created_by,
                                               created_at=row.created_at))
        for account in listed:
            conn.execute(accounts.insert().values(account=account, customer_id=customer, added_by=row.created_by,
                                                  added_at=row.created_at))
            taken.add(account)
        conn.execute(enr.update().where(enr.c.id == row.id).values(customer_id=customer))
        cert_sha256 = conn.execute(sa.select(certs.c.cert_sha256).where(certs.c.serial == row.serial)).scalar() \
            if row.serial is not None else None
        if cert_sha256 is not None:
            conn.execute(bound.insert().values(cert_sha256=cert_sha256, serial=row.serial, customer_id=customer,
                                               bound_by=f"enrollment:{row.id}", bound_at=row.used_at or row.created_at))
    # The renewals and re-keys of bound certificates, in issuance order (a renewal of a renewal too).
    owner = {r.serial: r.customer_id for r in conn.execute(sa.select(bound.c.serial, bound.c.customer_id))}
    for cert in conn.execute(sa.select(certs).where(certs.c.state == "issued", certs.c.cert_sha256.is_not(None))
                             .order_by(certs.c.created_at)).all():
        kind, _, parent = (cert.requester or "").partition(":")
        if kind in ("renewal", "rekey") and parent in owner and cert.serial not in owner:
            conn.execute(bound.insert().values(cert_sha256=cert.cert_sha256, serial=cert.serial,
                                               customer_id=owner[parent], bound_by=f"migration:{kind}",
                                               bound_at=cert.created_at))
            owner[cert.serial] = owner[parent]


def downgrade() -> None:
    with op.batch_alter_table("enrollments") as batch:
        batch.drop_column("approved_at")
        batch.drop_column("customer_id")
    op.drop_table("certificate_customers")
    op.drop_table("customer_accounts")
    op.drop_table("customers")
