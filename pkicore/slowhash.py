"""Secrets at rest as a slow hash: API keys now, activation codes and operator tokens later.

scrypt (RFC 7914) from hashlib (OpenSSL's): N=2^14, r=8, p=1 costs ~40 ms and 16 MiB
here, so a stolen table of hashes is slow to test guesses against, while a server that
caches what it verified (ca.banks) pays it once per key and process. The stored text names
its parameters (``scrypt$N$r$p$salt$hash``, base64 without padding), so they can be raised
later without breaking the keys already issued.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

N, R, P = 2 ** 14, 8, 1
_SALT, _LENGTH = 16, 32
# A stored hash must not make us spend more than this (a damaged or hostile row).
_MAX_N = 2 ** 17


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_secret(secret: str) -> str:
    """The text to store for ``secret``."""
    salt = os.urandom(_SALT)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=N, r=R, p=P, dklen=_LENGTH)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def check_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` is the one ``stored`` was made from (constant-time compare); False
    for a stored text that does not read, never an exception."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        n_, r_, p_ = int(n), int(r), int(p)
        if scheme != "scrypt" or not (2 <= n_ <= _MAX_N and 1 <= r_ <= 32 and 1 <= p_ <= 4):
            return False
        expected = _unb64(digest)
        if len(expected) < 16:                   # a damaged row must not match 1 secret in 256
            return False
        got = hashlib.scrypt(secret.encode(), salt=_unb64(salt), n=n_, r=r_, p=p_, dklen=len(expected),
                             maxmem=256 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)
