"""Reconciling issuance intents that a crash left ``pending`` (two-phase issuance: the
intent is stored before the token signs, the certificate after).

A pending intent older than the grace period belongs to no running issuance. The token
keeps no record of what it signed (SoftHSM, and most HSMs without an audit log), so udun
cannot tell whether a certificate was made: the intent is marked failed and its serial is
put on the CRL (reason unspecified), so that a certificate signed just before the crash
would be revoked, never silently good. Where an HSM keeps a signing log, compare the
intent's TBS hash (audit entry "abandon") with it.
"""
from __future__ import annotations

from datetime import timedelta

from ca.authority import CertificateAuthority
from ca.revocation import Revocation

GRACE = timedelta(minutes=10)       # longer than any issuance takes (one token signature)


def reconcile(ca: CertificateAuthority, *, older_than: timedelta = GRACE, actor: str = "reconcile") -> list[str]:
    """Abandon stale pending intents; publish a CRL naming them. Returns their serials."""
    now = ca.clock()
    serials = ca.store.abandon_pending(now - older_than, "pending since a crash: no certificate was stored",
                                       actor, now)
    if serials:
        Revocation(ca).publish("issuing")
    return serials
