"""Replay protection keyed by the signer's public key (SPKI) and tx_id (issue 10).

Until now one payment (tx_id) was accepted once per signer *certificate*: a second
certificate for the same key (a renewal) could replay it. Evidence records get
``signer_spki_sha256`` — SHA-256 (hex) of the signer's public key as canonical
SubjectPublicKeyInfo DER, as ``ca.evidence_store.spki_sha256`` computes it — and the
unique constraint moves from (signer_cert_sha256, tx_id) to (signer_spki_sha256, tx_id).

Existing records are filled from the signer certificate (the one whose SHA-256 is the
record's ``signer_cert_sha256``), looked for in the record's stored chain, then in its CMS,
then among the certificates this CA issued; one certificate is read once for all its
records. Two cases cannot get a plain key value, and neither makes the upgrade fail:

* no record of a certificate holds it readably (damaged data): its records get
  ``cert:<signer_cert_sha256>``. That keeps the old uniqueness (one tx_id per
  certificate, which the old constraint guaranteed) and cannot equal a key value, but a
  later payment of the same key is no longer matched against those records.
* the data already holds the attack this revision closes: one tx_id accepted under two
  certificates of one key. The first record received keeps the key value (a replay of it
  is refused naming it); each later one gets ``<key>#<its evidence id>``, unique, so the
  constraint holds and the records stay as they are. A warning names them.

This module reads only the database and computes the key itself: migrations must not
change with the application code.
"""
from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Iterator

import sqlalchemy as sa
from alembic import op
from asn1crypto import cms as asn1cms
from asn1crypto import pem
from asn1crypto import x509 as asn1x509
from cryptography.hazmat.primitives import serialization

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

KEY_LENGTH = 128        # 64 hex digits; "cert:" + 64; 64 + "#" + an evidence id (<= 40)
UNREADABLE_PREFIX = "cert:"
LATER_SEPARATOR = "#"

_log = logging.getLogger("alembic.runtime.migration")

_evidence = sa.table(
    "evidence", sa.column("id", sa.String), sa.column("received_at", sa.DateTime),
    sa.column("signer_cert_sha256", sa.String), sa.column("signer_spki_sha256", sa.String),
    sa.column("tx_id", sa.String), sa.column("cms", sa.LargeBinary), sa.column("chain", sa.LargeBinary))
_certificates = sa.table("certificates", sa.column("der", sa.LargeBinary), sa.column("cert_sha256", sa.String))


def spki_sha256(cert_der: bytes) -> str:
    """SHA-256 (hex) of the certificate's public key, canonical SubjectPublicKeyInfo DER."""
    spki = asn1x509.Certificate.load(cert_der).public_key.dump()
    canonical = serialization.load_der_public_key(spki).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(canonical).hexdigest()


def _pem_certs(chain: bytes | None) -> Iterator[bytes]:
    try:
        for _, _, der in pem.unarmor(chain or b"", multiple=True):
            yield der
    except Exception:  # noqa: BLE001  a damaged chain: the next source may still hold it
        return


def _cms_certs(cms: bytes | None) -> Iterator[bytes]:
    try:
        certs = asn1cms.ContentInfo.load(cms or b"")["content"]["certificates"]
        found = [c.chosen.dump() for c in certs or () if c.name == "certificate"]
    except Exception:  # noqa: BLE001  likewise
        return
    yield from found


def _key_of(conn: sa.Connection, cert_sha256: str) -> str | None:
    """The key value of one signer certificate, from the first record (in id order) whose
    chain or CMS holds it readably, else from the certificates table; None if none does."""
    last = ""
    while True:
        row = conn.execute(sa.select(_evidence.c.id, _evidence.c.chain, _evidence.c.cms)
                           .where(_evidence.c.signer_cert_sha256 == cert_sha256, _evidence.c.id > last)
                           .order_by(_evidence.c.id).limit(1)).first()
        if row is None:
            break
        last = row[0]
        for der in itertools.chain(_pem_certs(row[1]), _cms_certs(row[2])):   # the CMS only if need be
            key = _read(der, cert_sha256)
            if key is not None:
                return key
    for (der,) in conn.execute(sa.select(_certificates.c.der).where(_certificates.c.cert_sha256 == cert_sha256)):
        key = _read(der, cert_sha256)
        if key is not None:
            return key
    return None


def _read(der: bytes | None, cert_sha256: str) -> str | None:
    if not der or hashlib.sha256(der).hexdigest() != cert_sha256:
        return None
    try:
        return spki_sha256(der)
    except Exception:  # noqa: BLE001  an unreadable key: not this source
        return None


def upgrade() -> None:
    with op.batch_alter_table("evidence") as batch:
        batch.add_column(sa.Column("signer_spki_sha256", sa.String(KEY_LENGTH), nullable=True))
    conn = op.get_bind()
    certs = [r[0] for r in conn.execute(sa.select(_evidence.c.signer_cert_sha256).distinct())]
    for cert_sha256 in certs:
        key = _key_of(conn, cert_sha256)
        if key is None:
            key = UNREADABLE_PREFIX + cert_sha256
            _log.warning("evidence signed by certificate sha256 %s: no readable copy of the certificate; "
                         "its records keep the replay key %s", cert_sha256, key)
        conn.execute(sa.update(_evidence).where(_evidence.c.signer_cert_sha256 == cert_sha256)
                     .values(signer_spki_sha256=key))
    k, t = _evidence.c.signer_spki_sha256, _evidence.c.tx_id
    clashes = conn.execute(sa.select(k, t).group_by(k, t).having(sa.func.count() > 1)).all()
    for key, tx_id in clashes:
        ids = [r[0] for r in conn.execute(sa.select(_evidence.c.id).where(k == key, t == tx_id)
                                          .order_by(_evidence.c.received_at, _evidence.c.id))]
        for later in ids[1:]:
            conn.execute(sa.update(_evidence).where(_evidence.c.id == later)
                         .values(signer_spki_sha256=f"{key}{LATER_SEPARATOR}{later}"))
        _log.warning("tx_id %r was accepted %d times for one key (certificates of the same key): %s first, "
                     "then replayed as %s", tx_id, len(ids), ids[0], ", ".join(ids[1:]))
    with op.batch_alter_table("evidence") as batch:
        batch.alter_column("signer_spki_sha256", existing_type=sa.String(KEY_LENGTH), nullable=False)
        batch.drop_constraint("uq_evidence_signer_tx", type_="unique")
        batch.create_unique_constraint("uq_evidence_spki_tx", ["signer_spki_sha256", "tx_id"])


def downgrade() -> None:
    # One tx_id per key implies one per certificate: the old constraint holds again (unless
    # a certificate whose records had to take ``cert:...`` signed one of their tx_ids again
    # after the upgrade: then this fails, on that pair, and changes nothing).
    with op.batch_alter_table("evidence") as batch:
        batch.drop_constraint("uq_evidence_spki_tx", type_="unique")
        batch.create_unique_constraint("uq_evidence_signer_tx", ["signer_cert_sha256", "tx_id"])
        batch.drop_column("signer_spki_sha256")
