"""PIN retry limits (密码错误次数限制, issue 13 point 4) for client tokens.

A USB key counts wrong PINs itself and locks (CKF_USER_PIN_COUNT_LOW / FINAL_TRY / LOCKED in
its token flags): udun shows what the token says. SoftHSM never locks, so udun keeps a count
of its own on the token: a data object (CKO_DATA, application ``udun``) that is *public*, as
it must be readable and writable before a login succeeds. After ``UDUN_PIN_TRIES`` (3) wrong
PINs in a row udun refuses to log in until the security officer sets a new PIN
(`udun token unblock`, C_InitPIN with the SO PIN), which resets the count.

What a host-side count cannot stop (README): anyone with the token and PKCS#11 software of
their own can ignore the object or rewrite it (it is public), and a copy of a SoftHSM token
directory keeps its own count. It stops guessing through udun, nothing more; the token's
own counter, in its secure element, is what a real USB key relies on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pkcs11 import Attribute, ObjectClass, TokenFlag

from config.settings import Settings
from keystore import token
from pkicore.errors import ErrorKind, PkiError

APPLICATION = "udun"
LABEL = "udun-pin-failures"


@dataclass(frozen=True)
class PinState:
    """What a client token's PIN allows now."""

    failures: int | None        # udun's count (None: the token has none, or it cannot hold one)
    tries: int                  # UDUN_PIN_TRIES
    token_flags: int            # the token's own CKF_USER_PIN_* flags

    @property
    def locked(self) -> bool:
        return bool(self.token_flags & TokenFlag.USER_PIN_LOCKED) or \
            (self.tries > 0 and self.failures is not None and self.failures >= self.tries)

    def describe(self) -> str:
        if self.token_flags & TokenFlag.USER_PIN_LOCKED:
            return "locked by the token itself (its security officer must unblock it)"
        if self.locked:
            return f"locked after {self.failures} wrong PINs (udun token unblock, with the SO PIN)"
        parts = []
        if self.tries > 0 and self.failures is not None:
            parts.append(f"{self.tries - self.failures} of {self.tries} tries left")
        if self.token_flags & TokenFlag.USER_PIN_FINAL_TRY:
            parts.append("the token says: one try left")
        elif self.token_flags & TokenFlag.USER_PIN_COUNT_LOW:
            parts.append("the token says: wrong PINs were entered")
        return "; ".join(parts) or "no retry count"


def _public(settings: Settings, label: str | None, serial: str | None) -> tuple[Any, Any]:
    tok = token.find_token(settings, label=label, serial=serial)
    return tok, tok.open(rw=True)


def _counters(s: Any) -> list[Any]:
    return list(s.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.APPLICATION: APPLICATION,
                               Attribute.LABEL: LABEL}))


def _value(obj: Any) -> int:
    try:
        return int(bytes(obj[Attribute.VALUE]).decode() or "0")
    except ValueError:
        return 0


def _read(s: Any) -> int:
    """The count: the highest of the objects (two exist for a moment while it changes)."""
    return max((_value(o) for o in _counters(s)), default=0)


def _write(s: Any, value: int) -> int | None:
    """Set the count; None when the token will not hold it. A data object's value cannot be
    changed in place (SoftHSM: read-only after creation), so the new object is made first
    and the old ones destroyed after: a crash in between leaves the higher count."""
    try:
        old = _counters(s)
        s.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True, Attribute.PRIVATE: False,
                         Attribute.APPLICATION: APPLICATION, Attribute.LABEL: LABEL,
                         Attribute.VALUE: str(value).encode()})
        for obj in old:
            obj.destroy()
        return value
    except Exception:  # noqa: BLE001  a read-only token: its own counter is all there is
        return None


def state(settings: Settings, label: str | None, serial: str | None = None) -> PinState:
    with token._lock:
        tok, s = _public(settings, label, serial)
        try:
            failures = _read(s)
        finally:
            s.close()
        return PinState(failures, settings.pin_tries, int(tok.flags))


def before_login(settings: Settings, label: str | None, serial: str | None = None) -> PinState:
    """Refuse (PIN_LOCKED) a login the retry limit forbids."""
    now = state(settings, label, serial)
    if now.locked:
        raise PkiError(ErrorKind.PIN_LOCKED, f"token {label or serial!r}: the PIN is {now.describe()}")
    return now


def after_failure(settings: Settings, label: str | None, serial: str | None = None) -> PinState:
    """Count one wrong PIN; the state after it."""
    with token._lock:
        tok, s = _public(settings, label, serial)
        try:
            failures = _write(s, _read(s) + 1)
        finally:
            s.close()
        return PinState(failures, settings.pin_tries, int(tok.flags))


def after_success(settings: Settings, label: str | None, serial: str | None = None) -> None:
    """A right PIN ends the run of wrong ones."""
    with token._lock:
        _, s = _public(settings, label, serial)
        try:
            if _read(s) != 0:
                _write(s, 0)
        finally:
            s.close()
