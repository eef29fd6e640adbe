"""PIN retry limits (密码错误次数限制, issue 13 point 4) for client tokens.

A USB key counts wrong PINs itself and locks (CKF_USER_PIN_COUNT_LOW / FINAL_TRY / LOCKED in
its token flags): udun shows what the token says. SoftHSM never locks, so udun keeps a count
of its own on the token: a data object (CKO_DATA, application ``udun``) that is *public*, as
it must be readable and writable before a login succeeds. After ``UDUN_PIN_TRIES`` (3) wrong
PINs in a row udun refuses to log in until the security officer sets a new PIN
(`udun token unblock`, C_InitPIN with the SO PIN), which resets the count. The SO PIN's
tries are counted the same way (a second object): SoftHSM never locks that one either.

A try is counted *before* the login (and given back when the PIN is right), under a lock
file per token in UDUN_HOME, so processes at once, or one killed in the middle, get no
extra guesses.

What a host-side count cannot stop (README): anyone with the token and PKCS#11 software of
their own can ignore the object or rewrite it (it is public), and a copy of a SoftHSM token
directory keeps its own count. It stops guessing through udun, nothing more; the token's
own counter, in its secure element, is what a real USB key relies on.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

from pkcs11 import Attribute, ObjectClass, TokenFlag

from config.locks import file_lock
from config.settings import Settings
from keystore import token
from pkicore.errors import ErrorKind, PkiError

T = TypeVar("T")

APPLICATION = "udun"
USER = "udun-pin-failures"
SO = "udun-so-pin-failures"


@dataclass(frozen=True)
class PinState:
    """What a client token's PIN allows now."""

    failures: int | None        # udun's count (None: the token cannot hold one)
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


def _counters(s: Any, label: str) -> list[Any]:
    return list(s.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.APPLICATION: APPLICATION,
                               Attribute.LABEL: label}))


def _value(obj: Any) -> int:
    try:
        return max(0, int(bytes(obj[Attribute.VALUE]).decode() or "0"))
    except ValueError:
        return 0


def _read(s: Any, label: str) -> int:
    """The count: the highest of the objects (two exist for a moment while it changes)."""
    return max((_value(o) for o in _counters(s, label)), default=0)


def _write(s: Any, label: str, value: int) -> int | None:
    """Set the count; None when the token will not hold it (it refuses the object). A data
    object's value cannot be changed in place (SoftHSM: read-only after creation), so the
    new object is made first and the old ones destroyed after: a crash in between leaves
    the higher count."""
    old = _counters(s, label)
    try:
        s.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True, Attribute.PRIVATE: False,
                         Attribute.APPLICATION: APPLICATION, Attribute.LABEL: label,
                         Attribute.VALUE: str(value).encode()})
    except Exception:  # noqa: BLE001  a token that holds no object of ours: its own counter is all there is
        return None
    for obj in old:
        try:
            obj.destroy()
        except Exception:  # noqa: BLE001  gone already (another process); the highest value counts anyway
            pass
    return value


@contextmanager
def _guarded(settings: Settings, label: str | None, serial: str | None) -> Iterator[tuple[Any, Any]]:
    """(token, a public R/W session) under the token's lock file; PkiError for a token that
    cannot be reached."""
    tok = token.find_token(settings, label=label, serial=serial)
    lock = settings.home / "locks" / f"pin-{tok.serial.decode(errors='replace').strip()}.lock"
    with file_lock(lock), token._locked(f"counting PIN tries on {label or serial!r}"):
        try:
            s = tok.open(rw=True)
        except Exception as e:  # noqa: BLE001  write-protected, no session left: as a login would fail
            raise token.translate(e, f"opening token {label or serial!r}") from e
        try:
            yield tok, s
        finally:
            try:
                s.close()
            except Exception:  # noqa: BLE001  nothing more to do with it
                pass


def state(settings: Settings, label: str | None, serial: str | None = None) -> PinState:
    with _guarded(settings, label, serial) as (tok, s):
        return PinState(_read(s, USER), settings.pin_tries, int(tok.flags))


def attempt(settings: Settings, label: str | None, serial: str | None, login: Callable[[], T],
            counter: str = USER, what: str = "PIN") -> T:
    """``login()`` within the retry limit: refused (PIN_LOCKED) past it; the try counted
    before the login and given back when it succeeds; a wrong PIN's error says what is left."""
    tries = settings.pin_tries
    with _guarded(settings, label, serial) as (tok, s):
        before = PinState(_read(s, counter), tries, int(tok.flags) if counter == USER else 0)
        if before.locked:
            raise PkiError(ErrorKind.PIN_LOCKED, f"token {label or serial!r}: the {what} is "
                           + (before.describe() if counter == USER else
                              f"locked after {before.failures} wrong {what}s (initialise the token again)"))
        counted = _write(s, counter, (before.failures or 0) + 1)
        try:
            result = login()
        except PkiError as e:
            if e.kind is not ErrorKind.PIN:
                if counted is not None:
                    _write(s, counter, before.failures or 0)        # not a wrong PIN: no try spent
                raise
            after = PinState(counted, tries, int(tok.flags) if counter == USER else 0)
            words = after.describe() if counter == USER else (
                f"{max(0, tries - (counted or 0))} of {tries} tries left" if counted is not None else "no retry count")
            raise PkiError(ErrorKind.PIN_LOCKED if after.locked else ErrorKind.PIN, f"{e.message}; {words}") from None
        if counted is not None:
            _write(s, counter, 0)
        return result


def reset(settings: Settings, label: str | None, serial: str | None = None) -> None:
    """The count starts again (after the SO set a new PIN)."""
    with _guarded(settings, label, serial) as (_, s):
        if _read(s, USER) != 0:
            _write(s, USER, 0)
