"""Issue 10: delegated keys whose certificates have expired are destroyed on the online
token (their records stay, so old evidence still names their certificates)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta


def test_expired_delegated_keys_are_destroyed_current_ones_kept(ca) -> None:  # type: ignore[no-untyped-def]
    from ca import renewal
    from ca.authority import CertificateAuthority
    from ca.storage.delegated import DelegatedStore
    from keystore import token
    from keystore.online import online_session
    from pkicore.clock import fixed

    renewal.renew(ca, "ocsp")                      # at least one old responder key exists now
    store = DelegatedStore(ca.store)
    old = [r for r in store.all("ocsp") if r.cert_der != ca.store.authority("ocsp").cert_der]
    assert old and all(r.destroyed_at is None for r in old)
    # Once every old responder certificate has ended (eight days on with the default
    # validity; the shared CA may hold longer ones that earlier tests made), the current one
    # is kept (a server still needs a key until the job renews it), the others go.
    end = max([datetime.now(UTC) + timedelta(days=8), *(r.not_after + timedelta(seconds=1) for r in old)])
    later = CertificateAuthority(ca.settings, ca.store, clock=fixed(end))
    assert renewal.destroy_expired(later) >= len(old)
    ids_left = {bytes(k.id) for k in token.private_keys(online_session(ca.settings))}
    for r in old:
        assert r.key_id not in ids_left
        assert next(x for x in store.all("ocsp") if x.cert_sha256 == r.cert_sha256).destroyed_at is not None
    current = ca.store.authority("ocsp")
    assert current.key_id in ids_left and ca.store.authority("tsa").key_id in ids_left
    assert renewal.destroy_expired(later) == 0      # nothing left to destroy
    assert len(store.recorded()) >= len(old) + 2    # the records stay
