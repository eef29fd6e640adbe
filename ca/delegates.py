"""Relying-party side of the delegated certificates: our issuing CA's OCSP answers count
only when signed by the CA key itself or by a responder certificate the CA made for its
own key (recorded in ``delegated_keys`` by ca.renewal).

RFC 6960 §4.2.2.2 lets any certificate of the CA with id-kp-OCSPSigning answer for it;
udun narrows that, so that a responder certificate obtained any other way (a mistake, an
old hole, an insider with the issuing key's API) cannot say "good" for a revoked key.
"""
from __future__ import annotations

import hashlib
import threading
import time

from asn1crypto import ocsp, x509

from ca.storage.delegated import DelegatedStore
from ca.directory import CaDirectory
from pkicore.ocsp import issuer_hashes
from pkicore.pathstatus import StatusSource

REFRESH_SECONDS = 30.0       # re-read the record this often
MISS_SECONDS = 5.0           # and at most this often when an unknown responder shows up


class RecordedResponders:
    """The SHA-256 of every delegated certificate the CA made, re-read now and then."""

    def __init__(self, ca: CaDirectory) -> None:
        self.ca = ca
        self._store = DelegatedStore(ca.store)
        self._known: frozenset[str] = frozenset()
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def __contains__(self, cert_sha256: object) -> bool:
        now = time.monotonic()
        with self._lock:
            stale = now - self._read_at >= REFRESH_SECONDS
            missing = cert_sha256 not in self._known and now - self._read_at >= MISS_SECONDS
        if stale or missing:
            known = self._store.recorded()
            with self._lock:
                self._known, self._read_at = known, now
        return cert_sha256 in self._known


def acceptable(response_der: bytes, issuing: x509.Certificate, recorded: RecordedResponders) -> bool:
    """False for an OCSP response that speaks of a certificate of ``issuing`` (its CertID
    names our issuing CA by name or key hash) but is signed neither by ``issuing`` itself nor
    by a recorded delegated responder. Responses about other CAs' certificates pass (the
    engine applies RFC 6960 to them); unsuccessful ones carry no status and pass; one that
    cannot be read here is left out (dropping an answer can only make a verdict stricter).

    Screened by content, not by which certificate it was given for: the engine pools every
    response it is handed, so a forged answer given alongside the root's CRL would still be
    found for the end-entity certificate.
    """
    try:
        resp = ocsp.OCSPResponse.load(response_der)
        if resp["response_status"].native != "successful":
            return True
        basic = resp["response_bytes"]["response"].parsed
        tbs = basic["tbs_response_data"]
        about_ours = False
        for single in tbs["responses"]:
            cid = single["cert_id"]
            name_hash, key_hash = issuer_hashes(issuing, cid["hash_algorithm"]["algorithm"].native)
            if cid["issuer_name_hash"].native == name_hash or cid["issuer_key_hash"].native == key_hash:
                about_ours = True
        if not about_ours:
            return True
        rid = tbs["responder_id"]
        if rid.name == "by_name" and rid.chosen == issuing.subject:
            return True
        if rid.name == "by_key" and rid.chosen.native == issuing.public_key.sha1:
            return True
        for cert in basic["certs"] or []:
            named = (rid.name == "by_name" and cert.subject == rid.chosen) or \
                    (rid.name == "by_key" and cert.public_key.sha1 == rid.chosen.native)
            if named and hashlib.sha256(cert.dump()).hexdigest() in recorded:
                return True
        return False
    except Exception:  # noqa: BLE001  malformed (or an unknown hash): treated as not ours
        return False


def screened(ca: CaDirectory, source: StatusSource) -> StatusSource:
    """``source`` without the OCSP answers about our issuing CA's certificates that no
    CA-made responder signed (the verdict then lacks status: never a false accept)."""
    recorded = RecordedResponders(ca)
    issuing = x509.Certificate.load(ca.authority("issuing").cert_der)

    def wrapped(cert_der: bytes, issuer_der: bytes) -> list[tuple[str, bytes]]:
        return [(kind, der) for kind, der in source(cert_der, issuer_der)
                if kind != "ocsp" or acceptable(der, issuing, recorded)]
    return wrapped
