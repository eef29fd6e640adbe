"""Issue 4: revoke, hold (挂失), release (解挂), and the CRLs that publish them."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from asn1crypto import crl as asn1crl
from asn1crypto import pem

from helpers import SoftwareKey, openssl, udun, write
from pkicore.errors import ErrorKind, PkiError

LINT_CRL = str(Path(sys.executable).parent / "lint_crl")


@pytest.fixture(scope="module")
def rev(ca):  # type: ignore[no-untyped-def]
    from ca.revocation import Revocation

    return Revocation(ca)


def _new_cert(ca, cn: str):  # type: ignore[no-untyped-def]
    from pkicore.x509build import build_csr, parse_name

    return ca.issue(build_csr(SoftwareKey(), parse_name(f"CN={cn},O=revocation tests")))


def _entries(der: bytes) -> dict[int, asn1crl.RevokedCertificate]:
    lst = asn1crl.CertificateList.load(der)
    return {e["user_certificate"].native: e for e in lst["tbs_cert_list"]["revoked_certificates"]}


def test_hold_release_revoke_rules_and_history(ca, rev) -> None:  # type: ignore[no-untyped-def]
    rec = _new_cert(ca, "Rules")
    assert rev.hold(rec.serial, actor="teller-1").status == "on_hold"
    with pytest.raises(PkiError) as err:
        rev.hold(rec.serial)                                  # already on hold
    assert err.value.kind is ErrorKind.CONFLICT
    assert rev.release(rec.serial, actor="teller-2").status == "good"
    with pytest.raises(PkiError):
        rev.release(rec.serial)                               # not on hold
    compromised = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=3)
    done = rev.revoke(rec.serial, "keyCompromise", compromised, actor="officer")
    assert (done.status, done.revocation_reason, done.invalidity_date) == ("revoked", "keyCompromise", compromised)
    for action in (rev.hold, rev.release, rev.revoke):
        with pytest.raises(PkiError) as err:
            action(rec.serial)
        assert err.value.kind is ErrorKind.CONFLICT and "revoked" in err.value.message
    history = [(e.action, e.reason, e.actor) for e in ca.store.history(rec.serial)]
    assert history == [("hold", "certificateHold", "teller-1"), ("release", None, "teller-2"),
                       ("revoke", "keyCompromise", "officer")]


@pytest.mark.parametrize("kwargs, message", [
    ({"reason": "certificateHold"}, "reason must be one of"),
    ({"reason": "removeFromCRL"}, "reason must be one of"),
    ({"reason": "nonsense"}, "reason must be one of"),
    ({"invalidity": datetime.now(timezone.utc) + timedelta(days=1)}, "future"),
])
def test_bad_revocations_change_nothing(ca, rev, kwargs, message: str) -> None:  # type: ignore[no-untyped-def]
    rec = _new_cert(ca, "Bad Revocation")
    with pytest.raises(PkiError) as err:
        rev.revoke(rec.serial, **kwargs)
    assert message in err.value.message
    assert ca.get(rec.serial).status == "good" and ca.store.history(rec.serial) == []


def test_unknown_serial(rev) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PkiError) as err:
        rev.revoke("abcdef")
    assert err.value.kind is ErrorKind.NOT_FOUND


def test_crl_lists_reasons_and_drops_released_holds(ca, rev) -> None:  # type: ignore[no-untyped-def]
    kc, held, plain = (_new_cert(ca, n) for n in ("Compromised", "Held", "Plain"))
    at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    first = rev.revoke(kc.serial, "keyCompromise", at)
    rev.hold(held.serial)
    rev.revoke(plain.serial, "unspecified")
    crl = ca.store.latest_crl(ca.authority("issuing").id)
    entries = _entries(crl.der)
    kc_entry = entries[int(kc.serial, 16)]
    assert kc_entry["crl_entry_extensions"].native is not None
    exts = {e["extn_id"].native: e["extn_value"].native for e in kc_entry["crl_entry_extensions"]}
    assert exts["crl_reason"] == "key_compromise" and exts["invalidity_date"] == at
    held_exts = {e["extn_id"].native: e["extn_value"].native for e in entries[int(held.serial, 16)]["crl_entry_extensions"]}
    assert held_exts["crl_reason"] == "certificate_hold"
    # RFC 5280 §5.3.1: no reason code for unspecified.
    assert entries[int(plain.serial, 16)]["crl_entry_extensions"].native in (None, [])
    rev.release(held.serial)
    after = ca.store.latest_crl(ca.authority("issuing").id)
    assert int(held.serial, 16) not in _entries(after.der) and after.number > crl.number > 0
    assert first.status == "revoked"


def test_openssl_accepts_crls_and_checks_status(ca, rev, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Acceptance 2: `openssl crl -verify`; `openssl verify -crl_check_all` rejects, then accepts."""
    issuing, root = ca.chain_der()
    root_pem = write(tmp_path / "root.pem", pem.armor("CERTIFICATE", root))
    issuing_pem = write(tmp_path / "issuing.pem", pem.armor("CERTIFICATE", issuing))
    rec = _new_cert(ca, "Status Story")
    leaf = write(tmp_path / "leaf.pem", pem.armor("CERTIFICATE", rec.der))

    def crls() -> list[str]:
        out = []
        for which, anchor in (("issuing", issuing_pem), ("root", root_pem)):
            der = rev.current(which).der
            path = write(tmp_path / f"{which}.crl", pem.armor("X509 CRL", der))
            proc = openssl("crl", "-in", str(path), "-CAfile", str(anchor), "-noout", "-verify")
            assert proc.returncode == 0 and b"verify OK" in proc.stdout + proc.stderr, proc.stderr
            out += ["-CRLfile", str(path)]
        return out

    def check() -> subprocess.CompletedProcess[bytes]:
        return openssl("verify", "-crl_check_all", "-CAfile", str(root_pem), "-untrusted", str(issuing_pem),
                       *crls(), str(leaf))

    assert check().returncode == 0
    rev.hold(rec.serial)
    held = check()
    assert held.returncode != 0 and b"certificate revoked" in held.stdout + held.stderr
    rev.release(rec.serial)
    assert check().returncode == 0
    rev.revoke(rec.serial, "superseded")
    assert check().returncode != 0


@pytest.mark.parametrize("which, kind", [("issuing", "CRL"), ("root", "ARL")])
def test_pkilint_finds_nothing_in_our_crls(ca, rev, which: str, kind: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rec = _new_cert(ca, "Lint Me")
    rev.revoke(rec.serial, "cessationOfOperation", datetime.now(timezone.utc) - timedelta(minutes=5))
    path = write(tmp_path / "x.crl", pem.armor("X509 CRL", rev.publish(which).der))
    proc = subprocess.run([LINT_CRL, "lint", "-t", kind, "-p", "PKIX", "-s", "WARNING", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_crl_number_grows_across_processes(ca, home: Path) -> None:  # type: ignore[no-untyped-def]
    """Two processes revoke at the same moment: every CRL gets its own, growing number."""
    import os

    from keystore.ca_access import ca_pin

    recs = [_new_cert(ca, f"Parallel {i}") for i in range(4)]
    before = ca.store.latest_crl(ca.authority("issuing").id).number
    env = {**os.environ, "UDUN_HOME": str(home), "UDUN_CA_PIN": ca_pin(ca.settings)}
    procs = [subprocess.Popen([sys.executable, "-m", "udun.cli", "ca", "revoke", r.serial], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for r in recs]
    outs = [(p.wait(timeout=120), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    assert all(rc == 0 for rc, _ in outs), outs
    numbers = sorted(int(err.split(b"CRL number ")[1].split()[0]) for _, err in outs)
    assert numbers == list(range(before + 1, before + 5))       # distinct, one each, no gaps
    latest = ca.store.latest_crl(ca.authority("issuing").id)
    assert latest.number == before + 4
    entries = _entries(latest.der)
    assert all(int(r.serial, 16) in entries for r in recs)      # the last CRL saw every change


def test_crl_served_with_caching_headers(client, ca, rev) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/crl/issuing-ca.crl")
    assert resp.status_code == 200 and resp.mimetype == "application/pkix-crl"
    lst = asn1crl.CertificateList.load(resp.data)
    next_update = lst["tbs_cert_list"]["next_update"].native
    assert resp.expires == next_update
    max_age = int(resp.headers["Cache-Control"].split("max-age=")[1].split(",")[0])
    assert abs(max_age - (next_update - datetime.now(timezone.utc)).total_seconds()) < 60
    again = client.get("/crl/issuing-ca.crl", headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status_code == 304
    assert client.get("/crl/root-ca.crl").status_code == 200
    assert client.get("/crl/other.crl").status_code == 404


def test_cli_revoke_hold_release_and_show(ca, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import os

    from keystore.ca_access import ca_pin

    env = {"UDUN_HOME": str(home), "UDUN_CA_PIN": ca_pin(ca.settings)}
    rec = _new_cert(ca, "CLI Status")
    assert udun("ca", "hold", rec.serial, env=env).returncode == 0
    assert b"status      on-hold since" in udun("ca", "show", rec.serial, env=env).stdout
    assert udun("ca", "release", rec.serial, env=env).returncode == 0
    revoked = udun("ca", "revoke", rec.serial, "--reason", "keyCompromise", "--at", "2026-11-22T08:00:00Z", env=env)
    assert revoked.returncode == 0, revoked.stderr
    shown = udun("ca", "show", rec.serial, env=env).stdout.decode()
    assert "revoked" in shown and "keyCompromise" in shown and "hold certificateHold by cli:" in shown
    again = udun("ca", "hold", rec.serial, env=env)
    assert again.returncode == 2 and b"conflict" in again.stderr
    assert udun("ca", "revoke", rec.serial, "--at", "yesterday", env=env).returncode == 2
    out = tmp_path / "now.crl"
    assert udun("ca", "crl", "-o", str(out), env=env).returncode == 0
    assert int(rec.serial, 16) in _entries(out.read_bytes())
    assert os.path.getsize(out) > 0


def test_crl_job_publishes_only_what_is_due(ca, rev, home: Path) -> None:  # type: ignore[no-untyped-def]
    """CRLs are re-signed by an explicit job where the CA key is (`udun ca jobs --once`,
    `udun ca crl --due`), not by the bank-facing server: a fresh CRL is left alone, one with
    less than a quarter of its validity left is replaced."""
    import dataclasses

    from ca.authority import CertificateAuthority
    from ca.revocation import Revocation
    from keystore.ca_access import ca_pin

    env = {"UDUN_HOME": str(home), "UDUN_CA_PIN": ca_pin(ca.settings)}
    issuing_id, root_id = ca.authority("issuing").id, ca.authority("root").id
    rev.publish("issuing")
    rev.publish("root")
    before = (ca.store.latest_crl(issuing_id).number, ca.store.latest_crl(root_id).number)
    done = udun("ca", "crl", "--due", env=env)
    assert done.returncode == 0 and done.stdout == b"", done.stderr
    assert (ca.store.latest_crl(issuing_id).number, ca.store.latest_crl(root_id).number) == before
    # The issuing CA's newest CRL now lasts one hour: under a quarter of 24 h is left.
    short = CertificateAuthority(dataclasses.replace(ca.settings, crl_hours=1), ca.store)
    Revocation(short).publish("issuing")
    short_number = ca.store.latest_crl(issuing_id).number
    ran = udun("ca", "jobs", "--once", env=env)
    assert ran.returncode == 0, ran.stderr
    assert b"issuing CRL number" in ran.stderr and b"root CRL" not in ran.stderr
    latest = ca.store.latest_crl(issuing_id)
    assert latest.number == short_number + 1
    assert latest.next_update - latest.this_update == timedelta(hours=24)
    assert ca.store.latest_crl(root_id).number == before[1]
