"""One error type with a stable code (modelled on Boulder's berrors).

Library errors are translated at the boundary (``raise PkiError(...) from e``);
webapi maps the kind to an HTTP status, the CLI to an exit code and a message.
Messages never carry PINs, secrets or key material.
"""
from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    """Stable error codes: their values are part of the API (problem ``type``)."""

    BAD_INPUT = "bad-input"               # malformed request, file or argument
    BAD_TRANSACTION = "bad-transaction"   # payment fails the transaction schema
    BAD_CSR = "bad-csr"                   # CSR malformed or proof of possession fails
    POLICY = "policy-rejected"            # the request breaks the profile / policy
    NOT_FOUND = "not-found"               # certificate, token or key does not exist
    UNAUTHORIZED = "unauthorized"         # no credential, or one that is not valid (now)
    FORBIDDEN = "forbidden"               # a valid credential without the right to do this
    CONFLICT = "conflict"                 # the thing exists already / state forbids it
    TOKEN = "token-error"                 # PKCS#11 token failure
    PIN = "pin-incorrect"                 # wrong PIN or PIN locked
    PIN_LOCKED = "pin-locked"             # too many wrong PINs: the security officer unblocks it
    NOT_INITIALISED = "not-initialised"   # CA not set up yet
    UNSUPPORTED = "unsupported"           # algorithm or feature we do not support
    MEDIA_TYPE = "unsupported-media-type"  # the body's Content-Type is none the endpoint reads
    RATE_LIMITED = "too-many-requests"    # over a rate limit or quota: retry after a while
    UNAVAILABLE = "unavailable"           # a service we need (database, token) failed: retry later
    INTERNAL = "internal"                 # a bug or an environment failure


class PkiError(Exception):
    """The one exception type udun raises across layer boundaries."""

    def __init__(self, kind: ErrorKind, message: str, *, field: str | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.field = field
        self.retry_after = retry_after          # seconds (RATE_LIMITED, UNAVAILABLE): Retry-After

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.message}"
