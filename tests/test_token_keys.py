"""Acceptance 4: private keys stay on the token, and the PIN never shows up."""
from __future__ import annotations

import logging

import pkcs11
import pytest
from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as p11e

from helpers import PIN, USERS, sample_tx

ALL = list(USERS) + ["udun-ca", "udun-root", "udun-online"]


def _session(settings, label):  # type: ignore[no-untyped-def]
    from keystore import token
    from keystore.ca_access import ca_pin
    from keystore.online import online_pin

    pin = online_pin(settings) if label == "udun-online" else ca_pin(settings) if label.startswith("udun-") else PIN
    return token.session(settings, label, pin)


@pytest.mark.parametrize("label", ALL)
def test_private_keys_are_sensitive_and_never_extractable(label: str, settings, enrolled) -> None:  # type: ignore[no-untyped-def]
    from keystore import token

    keys = token.private_keys(_session(settings, label))
    assert keys
    for key in keys:
        flags = token.key_attributes(key)
        assert flags["sensitive"] and flags["always_sensitive"]
        assert not flags["extractable"] and flags["never_extractable"]
        assert key[Attribute.ID], "keys carry a CKA_ID"
        assert not key[Attribute.DECRYPT] and not key[Attribute.UNWRAP] and key[Attribute.SIGN]


@pytest.mark.parametrize("label", ALL)
def test_reading_the_private_value_fails(label: str, settings, enrolled) -> None:  # type: ignore[no-untyped-def]
    from keystore import token

    for key in token.private_keys(_session(settings, label)):
        secret_attr = Attribute.VALUE if key.key_type == pkcs11.KeyType.EC else Attribute.PRIVATE_EXPONENT
        with pytest.raises(p11e.AttributeSensitive):
            key[secret_attr]


def test_wrapping_the_private_key_out_fails(settings, enrolled) -> None:  # type: ignore[no-untyped-def]
    from keystore import token

    s = _session(settings, "user-ec")
    wrapper = s.generate_key(pkcs11.KeyType.AES, 256, label="test wrapping key", store=False,
                             capabilities=pkcs11.MechanismFlag.WRAP | pkcs11.MechanismFlag.ENCRYPT)
    (key,) = token.private_keys(s)
    with pytest.raises((p11e.KeyUnextractable, p11e.KeyNotWrappable, p11e.MechanismInvalid,
                        p11e.FunctionFailed, p11e.GeneralError)):
        wrapper.wrap_key(key, mechanism=pkcs11.Mechanism.AES_KEY_WRAP_PAD)


def test_attribute_cannot_be_flipped_to_extractable(settings, enrolled) -> None:  # type: ignore[no-untyped-def]
    from keystore import token

    (key,) = token.private_keys(_session(settings, "user-ec"))
    with pytest.raises(p11e.PKCS11Error):
        key[Attribute.EXTRACTABLE] = True
    with pytest.raises(p11e.PKCS11Error):
        key[Attribute.SENSITIVE] = False
    assert key[Attribute.SENSITIVE] and not key[Attribute.EXTRACTABLE]


def test_wrong_pin_error_does_not_contain_the_pin(settings, enrolled) -> None:  # type: ignore[no-untyped-def]
    from keystore import token
    from pkicore.errors import ErrorKind, PkiError
    from signer import tokens

    token.close_all()
    with pytest.raises(PkiError) as err:
        tokens.show(settings, "user-rsa2048", "not-the-pin-8812")
    assert err.value.kind is ErrorKind.PIN
    assert "not-the-pin-8812" not in str(err.value) and "not-the-pin-8812" not in repr(err.value.__cause__)


def test_pin_absent_from_logs(settings, enrolled, caplog) -> None:  # type: ignore[no-untyped-def]
    """Sign, then fail a login, with every logger at DEBUG: no record holds either PIN."""
    from keystore import token
    from pkicore.errors import PkiError
    from signer import tokens
    from signer.signing import sign_transaction

    token.close_all()
    with caplog.at_level(logging.DEBUG):
        sign_transaction(settings, "user-ec", PIN, sample_tx())
        token.close_all()
        with pytest.raises(PkiError):
            tokens.show(settings, "user-ec", "wrong-pin-20261122")
    for record in caplog.records:
        text = record.getMessage() + str(record.exc_info or "")
        assert PIN not in text and "wrong-pin-20261122" not in text


def test_ca_pin_file_is_private(settings, ca) -> None:  # type: ignore[no-untyped-def]
    for path in (settings.ca_pin_file, settings.online_pin_file):
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert settings.ca_pin_file.parent.stat().st_mode & 0o777 == 0o700


def test_cached_session_still_checks_the_pin(settings, enrolled) -> None:  # type: ignore[no-untyped-def]
    """After a correct login, another PIN must not ride on the open session."""
    from pkicore.errors import ErrorKind, PkiError
    from signer import tokens
    from signer.signing import sign_transaction

    assert tokens.show(settings, "user-ec", PIN).keys
    with pytest.raises(PkiError) as err:
        sign_transaction(settings, "user-ec", "WRONG-PIN-123", sample_tx())
    assert err.value.kind is ErrorKind.PIN
    assert tokens.show(settings, "user-ec", PIN).keys        # the right PIN still works


def test_token_found_by_serial(settings, enrolled) -> None:  # type: ignore[no-untyped-def]
    from keystore import token
    from signer import tokens

    serial = next(t.serial for t in token.list_tokens(settings) if t.label == "user-rsa2048")
    shown = tokens.show(settings, tokens.TokenRef(serial=serial), PIN)
    assert shown.label == "user-rsa2048" and shown.serial == serial
