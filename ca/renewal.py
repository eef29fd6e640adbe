"""Making and renewing the delegated keys (OCSP responder, TSA), where the CA key is.

The CA generates each key on the online token, builds the CSR itself and issues the
certificate under a delegated profile that no requester's CSR can ask for; the key and
certificate are recorded in ``delegated_keys`` (relying parties trust only those) and the
``authorities`` row names the current one, which serving processes reload. Keys whose
certificates have expired are destroyed on the token.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from ca.authority import CertificateAuthority
from ca.storage.delegated import DelegatedStore
from ca.storage.store import NewAuthority
from keystore import token
from keystore.online import online_session
from pkicore import names
from pkicore.algorithms import KeyType
from pkicore.x509build import build_csr

_log = logging.getLogger("udun.renewal")


@dataclass(frozen=True)
class Delegate:
    name: str                   # authorities row
    profile: str                # ca.profiles.DELEGATED
    common_name: str
    renew_before: timedelta     # a new certificate this long before the current one ends
    key_type: KeyType | None    # None: the issuing CA's key type


# The TSA is EC P-256 whatever the CA key is: a time-stamp costs one token signature, and
# an RSA-3072 signature on SoftHSM is ~20x slower than P-256.
DELEGATES = {
    "ocsp": Delegate("ocsp", "ocsp-responder", "OCSP Responder", timedelta(days=2), None),
    "tsa": Delegate("tsa", "tsa", "Time Stamping Authority", timedelta(days=30), KeyType.EC_P256),
}


@dataclass(frozen=True)
class Renewed:
    name: str
    serial: str
    not_after: str


def due(ca: CertificateAuthority, name: str) -> bool:
    """No key yet, not on the online token, or less than ``renew_before`` left."""
    d = DELEGATES[name]
    rec = ca.store.authority(name)
    if rec is None or rec.token_label != ca.settings.online_token:
        return True
    from asn1crypto import x509

    not_after = x509.Certificate.load(rec.cert_der)["tbs_certificate"]["validity"]["not_after"].native
    return not_after - ca.clock() < d.renew_before


def renew(ca: CertificateAuthority, name: str) -> Renewed:
    """A new key on the online token and a delegated certificate for it, now."""
    d = DELEGATES[name]
    settings = ca.settings
    issuer = ca.issuer()
    key_type = d.key_type or issuer.key.key_type
    key = token.generate_key(online_session(settings), key_type, secrets.token_bytes(8), f"udun {d.common_name}")
    org = next((v for n, v in names.pairs_of(issuer.cert.subject) if n == "organization_name"), "udun")
    subject = names.build([("organization_name", org), ("common_name", f"udun {d.common_name}")])
    rec = ca.issue_delegated(build_csr(key, subject), d.profile, requester=f"{name}-renewal")
    assert rec.der is not None
    now = ca.clock()
    DelegatedStore(ca.store).add(name, settings.online_token, key.key_id, rec.der, rec.not_after, now)
    ca.store.replace_authority(NewAuthority(name, settings.online_token, key.key_id, key.key_type.value,
                                            rec.subject, rec.der, rec.not_after), now)
    return Renewed(name, rec.serial, rec.not_after.isoformat())


def renew_all(ca: CertificateAuthority, *, force: bool = False) -> list[Renewed]:
    """Renew every delegated key that is due (all of them with ``force``)."""
    return [renew(ca, name) for name in DELEGATES if force or due(ca, name)]


def destroy_expired(ca: CertificateAuthority) -> int:
    """Destroy on the online token every delegated key whose certificate has ended (and is
    not the current one); their records stay, so old evidence still names them."""
    store = DelegatedStore(ca.store)
    current = {r.cert_der for name in DELEGATES if (r := ca.store.authority(name)) is not None}
    now = ca.clock()
    done = 0
    for rec in store.all():
        if rec.destroyed_at is not None or rec.not_after > now or rec.cert_der in current:
            continue
        if rec.token_label == ca.settings.online_token:
            try:
                token.destroy_key(online_session(ca.settings), rec.key_id)
            except Exception:  # noqa: BLE001  a key already gone is fine; try the others
                _log.warning("could not destroy the expired %s key %s", rec.name, rec.key_id.hex())
                continue
        store.mark_destroyed(rec.cert_sha256, now)
        done += 1
    return done
