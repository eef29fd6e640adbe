"""PKCS#11 token access: the only module that imports python-pkcs11.

Facts this code relies on (DESIGN.md "Token facts"): one logged-in session per token per
process (a second login raises UserAlreadyLoggedIn, closing it logs all sessions out);
tokens created after C_Initialize are invisible until the library is re-initialised;
tokens are found by label or serial, never by slot number; SoftHSM lacks
CKM_ECDSA_SHA256, so we hash on the host and sign with raw mechanisms.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import pkcs11
from asn1crypto import core
from asn1crypto import keys as asn1keys
from pkcs11 import Attribute, CertificateType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11e
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
from pkcs11.util.rsa import encode_rsa_public_key

from pkicore.algorithms import KeyType, SigScheme
from config.settings import Settings
from pkicore.errors import ErrorKind, PkiError

# DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1): CKM_RSA_PKCS signs it raw.
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")

_lock = threading.RLock()
_lib: Any = None
_lib_path: str | None = None
_sessions: dict[bytes, tuple[Any, bytes]] = {}   # token serial -> (session, PIN fingerprint)
_PIN_KEY = os.urandom(32)          # fingerprints are HMACs under a per-process key
# Bumped by refresh(): re-initialising invalidates every session and object handle, and
# a stale handle may silently name another token's object, so keys check it.
_generation = 0


def translate(e: Exception, what: str) -> PkiError:
    """Map a python-pkcs11 error to PkiError; the message never holds the PIN."""
    if isinstance(e, PkiError):
        return e
    if isinstance(e, (p11e.PinIncorrect, p11e.PinInvalid, p11e.PinLenRange)):
        return PkiError(ErrorKind.PIN, f"{what}: the PIN is incorrect")
    if isinstance(e, (p11e.PinLocked, p11e.PinExpired)):
        return PkiError(ErrorKind.PIN, f"{what}: the PIN is locked or expired")
    if isinstance(e, (p11e.NoSuchToken, p11e.TokenNotPresent, p11e.DeviceRemoved)):
        return PkiError(ErrorKind.NOT_FOUND, f"{what}: token not present")
    if isinstance(e, p11e.NoSuchKey):
        return PkiError(ErrorKind.NOT_FOUND, f"{what}: no such key on the token")
    if isinstance(e, (p11e.AttributeSensitive, p11e.KeyUnextractable, p11e.KeyNotWrappable)):
        return PkiError(ErrorKind.TOKEN, f"{what}: the key is sensitive and cannot be exported")
    if isinstance(e, (p11e.MechanismInvalid, p11e.FunctionNotSupported)):
        return PkiError(ErrorKind.UNSUPPORTED, f"{what}: the token does not support this mechanism")
    return PkiError(ErrorKind.TOKEN, f"{what}: token error {type(e).__name__}")


def write_softhsm_conf(settings: Settings) -> None:
    """A private SoftHSM config whose token directory lives under UDUN_HOME."""
    tokendir = settings.home / "tokens"
    tokendir.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf = settings.softhsm_conf
    if not conf.exists():
        # 0600 like every file udun writes under UDUN_HOME (issue 10).
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"directories.tokendir = {tokendir}\n"
                    "objectstore.backend = file\n"
                    "log.level = ERROR\n"
                    "slots.removable = false\n")
    elif conf.stat().st_mode & 0o077:
        conf.chmod(0o600)


def library(settings: Settings) -> Any:
    """The process's PKCS#11 library, loaded once (after fork, never before)."""
    global _lib, _lib_path
    with _lock:
        if _lib is None:
            if settings.uses_softhsm:
                write_softhsm_conf(settings)
                # SoftHSM reads its config at C_Initialize; this must precede loading.
                os.environ["SOFTHSM2_CONF"] = str(settings.softhsm_conf)
            if not os.path.exists(settings.pkcs11_module):
                raise PkiError(ErrorKind.TOKEN, f"PKCS#11 module not found: {settings.pkcs11_module}")
            try:
                _lib = pkcs11.lib(settings.pkcs11_module)
            except Exception as e:
                raise translate(e, "loading the PKCS#11 module") from e
            _lib_path = settings.pkcs11_module
        elif _lib_path != settings.pkcs11_module:
            raise PkiError(ErrorKind.INTERNAL, "a different PKCS#11 module is already loaded in this process")
        return _lib


def refresh(settings: Settings) -> None:
    """Re-initialise the library so that tokens created by other processes appear.

    This ends every session of this process, so cached sessions are dropped.
    """
    global _generation
    with _lock:
        lib = library(settings)
        _sessions.clear()
        _generation += 1
        try:
            lib.reinitialize()
        except Exception as e:
            raise translate(e, "re-initialising the PKCS#11 module") from e


@dataclass(frozen=True)
class TokenInfo:
    """What `udun token list` shows."""

    label: str
    serial: str
    manufacturer: str
    model: str
    initialized: bool


def _tokens(settings: Settings) -> list[Any]:
    lib = library(settings)
    for attempt in range(3):
        try:
            return [t for t in lib.get_tokens() if t.label]
        except (p11e.GeneralError, p11e.DeviceError) as e:
            # SoftHSM's file store can be caught mid-write by another process: retry.
            if attempt == 2:
                raise translate(e, "listing tokens") from e
            time.sleep(0.05 * (attempt + 1))
        except Exception as e:
            raise translate(e, "listing tokens") from e
    return []


def list_tokens(settings: Settings) -> list[TokenInfo]:
    """Tokens present in the configured module (initialised ones only)."""
    refresh(settings)
    return [
        TokenInfo(t.label, t.serial.decode(errors="replace"), t.manufacturer_id, t.model, True)
        for t in _tokens(settings)
    ]


def find_token(settings: Settings, label: str | None = None, serial: str | None = None) -> Any:
    """Find a token by label or serial; re-initialise once if it was created meanwhile."""
    if not label and not serial:
        raise PkiError(ErrorKind.BAD_INPUT, "name a token by --label or --serial")

    def match() -> list[Any]:
        return [
            t for t in _tokens(settings)
            if (label is None or t.label == label)
            and (serial is None or t.serial.decode(errors="replace") == serial)
        ]

    with _lock:
        found = match()
        if not found:
            refresh(settings)
            found = match()
    name = f"label {label!r}" if label else f"serial {serial!r}"
    if not found:
        raise PkiError(ErrorKind.NOT_FOUND, f"no token with {name}")
    if len(found) > 1:
        raise PkiError(ErrorKind.CONFLICT, f"more than one token with {name}; name it by --serial")
    return found[0]


def _fingerprint(pin: str) -> bytes:
    return hmac.new(_PIN_KEY, pin.encode(), hashlib.sha256).digest()


def session(settings: Settings, label: str | None, pin: str, serial: str | None = None) -> Any:
    """The process's one logged-in read/write session on a token (by label or serial).

    A cached session is only handed out for the PIN that opened it: any other PIN logs
    in afresh, so a wrong PIN fails as it would on a new session.
    """
    with _lock:
        token = find_token(settings, label=label, serial=serial)
        label = token.label
        cached = _sessions.get(token.serial)
        if cached is not None:
            if hmac.compare_digest(cached[1], _fingerprint(pin)):
                return cached[0]
            _sessions.pop(token.serial)
            _close(cached[0])
        try:
            s = token.open(user_pin=pin, rw=True)
        except p11e.UserAlreadyLoggedIn:
            # Another object of this process logged in; re-initialising is the only
            # portable way to get a session we own.
            refresh(settings)
            token = find_token(settings, label=label)
            try:
                s = token.open(user_pin=pin, rw=True)
            except Exception as e:
                raise translate(e, f"logging in to token {label!r}") from e
        except Exception as e:
            raise translate(e, f"logging in to token {label!r}") from e
        _sessions[token.serial] = (s, _fingerprint(pin))
        return s


def logged_in_labels() -> set[str]:
    """The labels of the tokens this process holds a logged-in session on (tests and /healthz)."""
    with _lock:
        return {s.token.label for s, _ in _sessions.values()}


def close_all() -> None:
    """Close every cached session (end of a command, before fork); open keys go stale."""
    global _generation
    with _lock:
        _generation += 1
        for s, _ in _sessions.values():
            _close(s)
        _sessions.clear()


def _close(s: Any) -> None:
    global _generation
    _generation += 1          # keys opened through this session are stale now
    try:
        s.close()
    except Exception:  # noqa: BLE001  a closed or vanished token is fine here
        pass


class TokenKey:
    """A private key on a token, behind the RawSigner seam."""

    def __init__(self, private: Any, key_type: KeyType, public_key_der: bytes, key_id: bytes) -> None:
        self._private = private
        self._key_type = key_type
        self._public_key_der = public_key_der
        self.key_id = key_id
        self._generation = _generation

    @property
    def key_type(self) -> KeyType:
        return self._key_type

    @property
    def stale(self) -> bool:
        """True once the library was re-initialised: the handle may name another object."""
        return self._generation != _generation

    @property
    def public_key_der(self) -> bytes:
        return self._public_key_der

    def sign_digest(self, digest: bytes, scheme: SigScheme) -> bytes:
        if len(digest) != 32:
            raise PkiError(ErrorKind.INTERNAL, "sign_digest takes a SHA-256 digest")
        if self._generation != _generation:
            raise PkiError(ErrorKind.TOKEN, "the token session was reset; open the key again")
        try:
            if scheme is SigScheme.ECDSA_SHA256:
                rs = self._private.sign(digest, mechanism=Mechanism.ECDSA)
                half = len(rs) // 2
                # PKCS#11 answers r||s; X.509 and CMS want DER Ecdsa-Sig-Value (RFC 3279
                # §2.2.3). cryptography's encoder is ~4x faster than asn1crypto's here.
                return encode_dss_signature(int.from_bytes(rs[:half], "big"), int.from_bytes(rs[half:], "big"))
            if scheme is SigScheme.RSA_PKCS1_SHA256:
                return bytes(self._private.sign(_SHA256_DIGEST_INFO + digest, mechanism=Mechanism.RSA_PKCS))
            return bytes(self._private.sign(
                digest, mechanism=Mechanism.RSA_PKCS_PSS,
                mechanism_param=(Mechanism.SHA256, pkcs11.MGF.SHA256, 32),
            ))
        except Exception as e:
            raise translate(e, "signing on the token") from e


def _key_type_of(public: Any) -> KeyType:
    if public.key_type == pkcs11.KeyType.EC:
        return KeyType.EC_P256
    bits = public.key_length
    if bits == 2048:
        return KeyType.RSA_2048
    if bits == 3072:
        return KeyType.RSA_3072
    raise PkiError(ErrorKind.UNSUPPORTED, f"unsupported RSA key size {bits}")


def _public_der(public: Any) -> bytes:
    if public.key_type == pkcs11.KeyType.EC:
        return bytes(encode_ec_public_key(public))
    rsa_pub = encode_rsa_public_key(public)
    return asn1keys.PublicKeyInfo({
        # RFC 3279 §2.3.1: rsaEncryption parameters MUST be NULL (present, not absent).
        "algorithm": {"algorithm": "rsa", "parameters": core.Null()},
        "public_key": asn1keys.RSAPublicKey.load(rsa_pub),
    }).dump()


def generate_key(s: Any, key_type: KeyType, key_id: bytes, label: str) -> TokenKey:
    """Generate a signing key pair on the token: sensitive, never extractable."""
    private_template = {
        Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.DECRYPT: False,
        Attribute.UNWRAP: False, Attribute.DERIVE: False,
    }
    public_template = {Attribute.TOKEN: True, Attribute.VERIFY: True, Attribute.ENCRYPT: False,
                       Attribute.WRAP: False}
    caps = MechanismFlag.SIGN | MechanismFlag.VERIFY
    try:
        if key_type is KeyType.EC_P256:
            params = s.create_domain_parameters(
                pkcs11.KeyType.EC,
                {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                local=True,
            )
            public, private = params.generate_keypair(
                store=True, id=key_id, label=label, capabilities=caps,
                public_template=public_template, private_template=private_template,
            )
        else:
            public, private = s.generate_keypair(
                pkcs11.KeyType.RSA, key_type.rsa_bits, store=True, id=key_id, label=label,
                capabilities=caps, public_template=public_template, private_template=private_template,
            )
    except Exception as e:
        raise translate(e, "generating a key pair on the token") from e
    return TokenKey(private, key_type, _public_der(public), key_id)


def load_key(s: Any, key_id: bytes | None = None, label: str | None = None) -> TokenKey:
    """Find a key pair on the token by CKA_ID (or label)."""
    try:
        private = s.get_key(object_class=ObjectClass.PRIVATE_KEY, id=key_id, label=label)
        public = s.get_key(object_class=ObjectClass.PUBLIC_KEY, id=private.id)
    except p11e.MultipleObjectsReturned as e:
        raise PkiError(ErrorKind.CONFLICT, "more than one key matches; name it by id") from e
    except Exception as e:
        raise translate(e, "finding the key") from e
    return TokenKey(private, _key_type_of(public), _public_der(public), bytes(private.id))


def destroy_key(s: Any, key_id: bytes) -> None:
    """Destroy a key pair (private and public objects) with CKA_ID ``key_id`` (C_DestroyObject)."""
    try:
        for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
            for obj in list(s.get_objects({Attribute.CLASS: cls, Attribute.ID: key_id})):
                obj.destroy()
    except Exception as e:
        raise translate(e, "destroying the key") from e


def private_keys(s: Any) -> list[Any]:
    """Private key objects on the token (handles only: their values stay inside).

    A list, not a generator: a search left open blocks every other call on the session.
    """
    try:
        return list(s.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
    except Exception as e:
        raise translate(e, "listing keys") from e


def key_attributes(private: Any) -> dict[str, Any]:
    """The protection flags a test or `token show` reports for a private key."""
    return {
        "id": bytes(private.id).hex(),
        "label": private.label,
        "sensitive": bool(private[Attribute.SENSITIVE]),
        "extractable": bool(private[Attribute.EXTRACTABLE]),
        "always_sensitive": bool(private[Attribute.ALWAYS_SENSITIVE]),
        "never_extractable": bool(private[Attribute.NEVER_EXTRACTABLE]),
    }


def store_certificate(s: Any, cert_der: bytes, subject_der: bytes, key_id: bytes, label: str) -> None:
    """Write an X.509 certificate object under the key's CKA_ID, replacing an older one."""
    try:
        for old in s.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: key_id}):
            old.destroy()
        s.create_object({
            Attribute.CLASS: ObjectClass.CERTIFICATE,
            Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: False,
            Attribute.ID: key_id,
            Attribute.LABEL: label,
            Attribute.SUBJECT: subject_der,
            Attribute.VALUE: cert_der,
        })
    except Exception as e:
        raise translate(e, "writing the certificate to the token") from e


def certificates(s: Any) -> list[tuple[bytes, bytes]]:
    """(CKA_ID, DER) of every X.509 certificate object on the token."""
    try:
        return [
            (bytes(o[Attribute.ID]), bytes(o[Attribute.VALUE]))
            for o in s.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE})
        ]
    except Exception as e:
        raise translate(e, "reading certificates from the token") from e
