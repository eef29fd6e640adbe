"""Checking an evidence bundle against the CA's own record, where its database is.

`udun evidence verify` run where UDUN_HOME holds the CA adds these checks to the offline
ones (pkicore.bundle_check): the evidence id is a record of this database with the same
signed payment, every time-stamp was made by a TSA certificate the CA made for its own key
(``delegated_keys``), and every OCSP answer about our CA's certificates was signed by the
CA or a responder it recorded. Offline, a bank relies on the CA never certifying anybody
else's key for those purposes (ca.profiles.REQUESTABLE).
"""
from __future__ import annotations

import io
import re
import zipfile

from asn1crypto import x509

from ca.storage.delegated import DelegatedStore
from ca.delegates import RecordedResponders, acceptable
from ca.directory import CaDirectory
from ca.storage.evidence import EvidenceStore
from pkicore.bundle_check import BundleVerdict
from pkicore.errors import PkiError

_OCSP = re.compile(r"[^/]+/(ocsp|ca-ocsp-[0-9]+)\.der")


def record_problems(ca: CaDirectory, bundle: bytes, verdict: BundleVerdict) -> list[str]:
    """What the CA's record says against a bundle that passed the offline checks."""
    problems: list[str] = []
    try:
        rec = EvidenceStore(ca.store).get(verdict.evidence_id, bank_id=None)      # the CA side: any bank's
    except PkiError:
        rec = None
    with zipfile.ZipFile(io.BytesIO(bundle)) as z:
        members = {name: z.read(name) for name in z.namelist()}
    payment = next((d for n, d in members.items() if n.endswith("/signature.p7s")), b"")
    if rec is None:
        problems.append(f"evidence {verdict.evidence_id} is not a record of this CA's database")
    elif rec.cms != payment:
        problems.append(f"signature.p7s is not the payment recorded as evidence {verdict.evidence_id}")
    recorded = DelegatedStore(ca.store).recorded()
    for digest in verdict.tsa_certificates:
        if digest not in recorded:
            problems.append(f"a time-stamp was made by a TSA certificate (SHA-256 {digest[:16]}...) "
                            "that this CA never made for its own TSA key")
    issuing = x509.Certificate.load(ca.authority("issuing").cert_der)
    responders = RecordedResponders(ca)
    for name, der in sorted(members.items()):
        if _OCSP.fullmatch(name) and not acceptable(der, issuing, responders):
            problems.append(f"{name.split('/', 1)[1]} was signed by an OCSP responder this CA never made")
    return problems
