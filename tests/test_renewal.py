"""Issue 12 point 6: renewal (same key, new certificate, in the last days of the current one)
and re-key (new key made on the token, new certificate, the old one revoked as superseded
and its key destroyed), authenticated by the current certificate's key; `token keygen
--replace`. In-process against the admin app, and through the CLI against a real
`udun serve-admin`."""
from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from asn1crypto import pem
from flask import Flask
from flask.testing import FlaskClient

from helpers import CUSTOMER, PIN, SO_PIN, udun
from pkicore.errors import ErrorKind, PkiError


def _sender(client: FlaskClient) -> Any:
    def send(method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        resp = client.open(path, method=method, data=body, headers={**headers, "Content-Type": "application/json"})
        return resp.status_code, resp.get_json(silent=True)
    return send


def _enrolled_token(settings: Any, ca: Any) -> tuple[str, Any]:
    """A fresh token with a key and a certificate of the session's CA on it."""
    from pkicore.algorithms import KeyType
    from signer import tokens

    label = f"rk-{uuid.uuid4().hex[:6]}"
    tokens.init(settings, label, PIN, SO_PIN)
    tokens.keygen(settings, label, PIN, KeyType.EC_P256)
    csr = tokens.csr(settings, label, PIN, f"CN=续期 {label},O=udun tests,C=CN")
    rec = ca.issue(csr, "client", requester="pytest", customer=CUSTOMER)
    tokens.import_certificates(settings, label, PIN, pem.armor("CERTIFICATE", rec.der)
                               + b"".join(pem.armor("CERTIFICATE", d) for d in ca.chain_der()))
    return label, rec


def _keys(settings: Any, label: str) -> list[str]:
    from signer import tokens

    return [k["id"] for k in tokens.show(settings, label, PIN).keys]


def test_renewal_keeps_the_key_and_opens_late(admin_app: Flask, settings: Any, ca: Any) -> None:
    from ca.rekey import Renewals
    from pkicore.adminsig import renew_message
    from pkicore.algorithms import sign
    from pkicore.clock import fixed
    from signer import rekey_client, tokens

    label, rec = _enrolled_token(settings, ca)
    client = admin_app.test_client()
    with pytest.raises(PkiError) as too_early:
        rekey_client.renew(settings, _sender(client), label, PIN)
    assert too_early.value.kind is ErrorKind.CONFLICT and "can be renewed from" in too_early.value.message

    late = Renewals(ca, fixed(rec.not_after - timedelta(days=5)))
    csr = tokens.csr(settings, label, PIN, rec.subject)
    key = tokens.signing_key(settings, label, PIN)

    def signed(serial: str, csr_der: bytes) -> tuple[str, str]:
        signature, scheme = sign(key, renew_message(serial, csr_der))
        return base64.b64encode(signature).decode(), scheme.value

    with pytest.raises(PkiError) as unsigned:                      # a CSR alone is no credential
        late.renew(rec.serial, csr, base64.b64encode(b"\x30\x00").decode(), "ecdsa")
    assert unsigned.value.kind is ErrorKind.UNAUTHORIZED
    renewed = late.renew(rec.serial, csr, *signed(rec.serial, csr))
    assert renewed.serial != rec.serial and renewed.subject == rec.subject
    from ca.storage.customers import CustomerStore

    assert CustomerStore(ca.store).customer_of(renewed.serial) == CUSTOMER     # the binding goes along
    assert ca.get(rec.serial).status == "good"                     # the old one runs to its end
    with pytest.raises(PkiError) as replayed:                      # the same request again: refused
        late.renew(rec.serial, csr, *signed(rec.serial, csr))
    assert replayed.value.kind is ErrorKind.CONFLICT and "renewed already" in replayed.value.message
    from helpers import software_csr
    from ca.policy import load_csr_bytes

    other = load_csr_bytes(software_csr(f"续期 {label}"))
    with pytest.raises(PkiError) as other_key:
        Renewals(ca, fixed(renewed.not_after - timedelta(days=5))).renew(renewed.serial, other,
                                                                         *signed(renewed.serial, other))
    assert other_key.value.kind is ErrorKind.POLICY


def test_rekey_makes_a_new_key_and_supersedes_the_old(admin_app: Flask, settings: Any, ca: Any) -> None:
    from signer import rekey_client
    from signer.tokens import certificate_and_chain

    label, rec = _enrolled_token(settings, ca)
    before = _keys(settings, label)
    done = rekey_client.rekey(settings, _sender(admin_app.test_client()), label, PIN)
    after = _keys(settings, label)
    assert len(after) == 1 and after != before
    old = ca.get(rec.serial)
    assert old.status == "revoked" and old.revocation_reason == "superseded"
    new = ca.get(done.serial)
    assert new.status == "good" and new.subject == rec.subject and new.requester == f"rekey:{rec.serial}"
    from ca.storage.customers import CustomerStore

    assert CustomerStore(ca.store).customer_of(new.serial) == CUSTOMER         # the binding goes along
    _, cert_der, chain = certificate_and_chain(settings, label, PIN)
    assert cert_der == new.der and len(chain) == 2


def test_a_rekey_not_signed_by_the_current_key_is_refused_and_leaves_the_token(admin_app: Flask, settings: Any,
                                                                             ca: Any) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from helpers import software_csr
    from pkicore.adminsig import rekey_message

    label, rec = _enrolled_token(settings, ca)
    client = admin_app.test_client()
    csr_pem = software_csr(f"续期 {label}")
    from ca.policy import load_csr_bytes

    forged = ec.generate_private_key(ec.SECP256R1()).sign(rekey_message(rec.serial, load_csr_bytes(csr_pem)),
                                                           ec.ECDSA(hashes.SHA256()))
    refused = client.post("/api/v1/rekey", json={"serial": rec.serial, "csr": csr_pem.decode(),
                                                 "signature": base64.b64encode(forged).decode()})
    assert refused.status_code == 401 and ca.get(rec.serial).status == "good"
    from signer import rekey_client

    keys = _keys(settings, label)
    from ca.revocation import Revocation

    Revocation(ca).hold(rec.serial, actor="pytest")
    with pytest.raises(PkiError) as held:
        rekey_client.rekey(settings, _sender(client), label, PIN)
    assert held.value.kind is ErrorKind.CONFLICT and "on hold" in held.value.message
    assert _keys(settings, label) == keys                           # the new key was dropped again


def test_renew_rekey_and_replace_through_the_cli(settings: Any, ca: Any) -> None:
    from nodes import running_admin

    label, rec = _enrolled_token(settings, ca)
    env = {"UDUN_PIN": PIN}
    with running_admin(settings.home, "udun-test-admin-key-0123456789abcdef", settings.database_url,
                       {"UDUN_RENEW_BEFORE_DAYS": "3650"}) as admin:
        renewed = udun("token", "renew", "--label", label, "--url", admin.base, env=env)
        assert renewed.returncode == 0, renewed.stderr
        assert f"replaces {rec.serial}" in renewed.stderr.decode()
        rekeyed = udun("token", "rekey", "--label", label, "--url", admin.base, env=env)
        assert rekeyed.returncode == 0, rekeyed.stderr
    assert "superseded" in rekeyed.stderr.decode()
    shown = json.loads(udun("token", "show", "--label", label, "--json", env=env).stdout)
    assert len(shown["keys"]) == 1 and shown["keys"][0]["extractable"] is False

    refused = udun("token", "keygen", "--label", label, "--replace", env=env, input=b"n\n")
    assert refused.returncode == 2 and "not confirmed" in refused.stderr.decode()
    assert json.loads(udun("token", "show", "--label", label, "--json", env=env).stdout)["keys"] == shown["keys"]
    replaced = udun("token", "keygen", "--label", label, "--replace", env=env, input=b"y\n")
    assert replaced.returncode == 0, replaced.stderr
    after = json.loads(udun("token", "show", "--label", label, "--json", env=env).stdout)
    assert len(after["keys"]) == 1 and after["keys"][0]["id"] != shown["keys"][0]["id"]
    assert all(c["id"] != shown["keys"][0]["id"] for c in after["certificates"])   # its certificate went too
