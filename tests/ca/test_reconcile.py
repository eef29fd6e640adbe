"""Issue 10: `pending` intents a crash left behind are reconciled (`udun ca reconcile`, and
at the start of `serve-admin` and every `ca jobs` round): failed, and listed on the CRL."""
from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import crl as asn1crl

from helpers import SoftwareKey, udun
from pkicore.x509build import build_csr, parse_name


def _intent(ca, created: datetime, cn: str) -> str:  # type: ignore[no-untyped-def]
    """What `issue` writes before the token signs, as a crash would leave it."""
    from ca.policy import check_csr

    checked = check_csr(build_csr(SoftwareKey(), parse_name(f"CN={cn},O=udun tests")))
    serial = secrets.token_hex(16)
    assert ca.store.record_intent(
        serial=serial, authority_id=ca.authority("issuing").id, profile="client", subject=checked.subject_text,
        requester="pytest", tbs_sha256=hashlib.sha256(serial.encode()).hexdigest(), not_before=created,
        not_after=created + timedelta(days=1), now=created, public_key_der=checked.public_key_der,
        subject_der=checked.subject.dump())
    return serial


def test_stale_pending_intents_are_failed_and_listed_on_the_crl(ca, home: Path) -> None:  # type: ignore[no-untyped-def]
    from keystore.ca_access import ca_pin

    crashed = _intent(ca, datetime.now(UTC) - timedelta(hours=1), "Crashed Issuance")
    running = _intent(ca, datetime.now(UTC), "Running Issuance")
    env = {"UDUN_HOME": str(home), "UDUN_CA_PIN": ca_pin(ca.settings)}
    done = udun("ca", "reconcile", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split() == [crashed]
    rec = ca.store.certificate(crashed)
    assert (rec.state, rec.status, rec.revocation_reason) == ("failed", "revoked", "unspecified")
    assert ca.store.certificate(running).state == "pending"          # within the grace period: left alone
    latest = ca.store.latest_crl(ca.authority("issuing").id)
    listed = {e["user_certificate"].native for e in asn1crl.CertificateList.load(latest.der)["tbs_cert_list"]
              ["revoked_certificates"]}
    assert int(crashed, 16) in listed and int(running, 16) not in listed
    history = ca.store.history(crashed)
    assert [h.action for h in history] == ["abandon"] and history[0].actor.startswith("cli:")
    again = udun("ca", "reconcile", env=env)                          # nothing left to do
    assert again.returncode == 0 and again.stdout == b""
    ca.store.record_failed(running)
