"""Bearer texts checked against slow hashes (bank keys, operator API tokens), with a cache.

A text is ``<prefix><id>_<secret>``: the id (public, in logs and the audit log) finds the
row, the secret is stored only as a slow hash (pkicore.slowhash). Only the slow hash is
cached: per process, the SHA-256 of a text that passed it against that row's stored hash
(a memory-only fact; a copy of the database does not give it away). Every request still
reads the row, so a revocation or an expiry counts on the next request, on every node.
"""
from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict

from pkicore.errors import ErrorKind, PkiError
from pkicore.ratelimit import Limiter, Rate, retry_seconds
from pkicore.slowhash import check_secret, hash_secret

_CACHE_MAX = 4096
# Slow-hash checks of one id a process makes for texts it has not verified before: a
# legitimate credential needs one per worker (then it is cached); anyone naming a known id
# with wrong secrets gets at most this many ~40 ms scrypt runs out of a worker.
SLOW_CHECKS = Rate(10, 60)


def new_text(prefix: str) -> tuple[str, str, str]:
    """(id, text shown once, slow hash to store) of a fresh credential."""
    ident = secrets.token_hex(8)
    text = f"{prefix}{ident}_{secrets.token_urlsafe(32)}"
    return ident, text, hash_secret(text)


class SecretChecker:
    """Checks a text against a row's slow hash, remembering the ones that passed."""

    def __init__(self, slow: Rate = SLOW_CHECKS) -> None:
        self._verified: OrderedDict[str, tuple[str, str]] = OrderedDict()   # id -> (sha256 of text, hash)
        self._slow = Limiter(slow)

    def forget(self, ident: str) -> None:
        self._verified.pop(ident, None)

    def ok(self, ident: str, text: str, stored_hash: str, client: str | None = None) -> bool:
        """Whether ``text`` is the secret behind ``stored_hash``; RATE_LIMITED when this
        process checked too many new texts for ``ident`` from ``client`` (SLOW_CHECKS; per
        client address, so that someone who knows an id cannot lock its holder out)."""
        fingerprint = hashlib.sha256(text.encode()).hexdigest()
        if self._verified.get(ident) == (fingerprint, stored_hash):
            self._verified.move_to_end(ident)
            return True
        wait = self._slow.wait(ident if client is None else f"{ident}@{client}")
        if wait:
            retry = retry_seconds(wait)
            raise PkiError(ErrorKind.RATE_LIMITED, f"too many new texts for credential {ident} in this process; "
                           f"retry after {retry} s", retry_after=retry)
        if not check_secret(text, stored_hash):
            return False
        self._verified[ident] = (fingerprint, stored_hash)
        if len(self._verified) > _CACHE_MAX:
            self._verified.popitem(last=False)
        return True
