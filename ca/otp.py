"""Step-up one-time passwords (宝令 60 s, 手机宝令 30 s; issue 13 point 3).

A customer has one RFC 6238 TOTP credential at a time (SHA-1, 6 digits: what authenticator
apps and hardware tokens speak; pyotp computes the codes). Above the amount the bank names
(``UDUN_OTP_ABOVE``, per currency) a payment must carry the current code *inside the signed
payment* (its ``otp`` field), so the code is linked to that amount and payee (PSD2's dynamic
linking). A code is checked ±1 time step; it is accepted once per credential, whichever node
sees it (the evidence transaction raises the credential's ``last_step`` only when higher);
five failures in a row lock the credential until an operator unlocks it. The answer to a
wrong code does not say more than "not accepted" (wrong, reused or late read the same).

The secrets are stored encrypted (AES-256-GCM, the credential id as associated data) under
the OTP key (``UDUN_OTP_KEY`` or ``$UDUN_HOME/secrets/otp.key``, made at the first
enrollment); they are shown once, in the otpauth:// URI, and never logged.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime
from typing import Any

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from config.settings import Settings
from keystore.pinfile import read_pin
from pkicore.errors import ErrorKind, PkiError

KINDS = {"baoling": 60, "mobile": 30}          # 宝令 (a hardware token), 手机宝令 (an app)
DIGITS = 6
MAX_FAILURES = 5
WINDOW = 1                                      # time steps either side of now
ISSUER = "udun"


def otp_key(settings: Settings, create: bool = False) -> bytes:
    """The 256-bit key of the OTP secrets."""
    text = read_pin("UDUN_OTP_KEY", settings.otp_key_file, create=create, what="OTP key", nbytes=32,
                    hint="copy secrets/otp.key from the CA's UDUN_HOME")
    return hashlib.sha256(b"udun otp key\0" + text.encode()).digest()


def seal(key: bytes, credential_id: str, secret_b32: str) -> str:
    nonce = secrets.token_bytes(12)
    return base64.b64encode(nonce + AESGCM(key).encrypt(nonce, secret_b32.encode(), credential_id.encode())).decode()


def unseal(key: bytes, credential_id: str, sealed: str) -> str:
    try:
        raw = base64.b64decode(sealed)
        return AESGCM(key).decrypt(raw[:12], raw[12:], credential_id.encode()).decode()
    except (InvalidTag, ValueError) as e:
        raise PkiError(ErrorKind.INTERNAL, f"OTP credential {credential_id} does not open with this OTP key "
                                           "(a different secrets/otp.key?)") from e


def new_secret() -> str:
    """160 random bits, base32 (RFC 4226 §4 recommends 160)."""
    return pyotp.random_base32(32)


def totp(secret_b32: str, period: int, digits: int = DIGITS, digest: Any = hashlib.sha1) -> pyotp.TOTP:
    """RFC 6238 TOTP (SHA-1 for credentials: what tokens and apps compute; the RFC's SHA-256
    and SHA-512 for its test vectors)."""
    return pyotp.TOTP(secret_b32, digits=digits, interval=period, digest=digest)


def matching_step(secret_b32: str, period: int, digits: int, code: str, now: datetime) -> int | None:
    """The time step (RFC 6238 T) within ±WINDOW of ``now`` whose code is ``code``, if any;
    the later one first, so a code is never accepted at a step already passed."""
    t = totp(secret_b32, period, digits)
    current = t.timecode(now)
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if pyotp.utils.strings_equal(t.generate_otp(step), code):
            found = step
    return found


def provisioning_uri(secret_b32: str, customer: str, kind: str, issuer: str = ISSUER) -> str:
    """otpauth://totp/ISSUER:CUSTOMER?secret=...&issuer=...&period=... (Key Uri Format)."""
    return totp(secret_b32, KINDS[kind]).provisioning_uri(name=customer, issuer_name=issuer)


def terminal_qr(uri: str) -> str:
    """The URI as a QR code drawn with block characters, for a terminal."""
    import io

    import segno

    out = io.StringIO()
    segno.make(uri, error="m").terminal(out=out, compact=True)
    return out.getvalue()
