"""PKCS#11 token access: the only module that imports python-pkcs11.

Facts this code relies on (DESIGN.md "Token facts"): one logged-in session per token per
process (a second login raises UserAlreadyLoggedIn, closing it logs all sessions out);
tokens created after C_Initialize are invisible until the library is re-initialised;
tokens are found by label or serial, never by slot number; SoftHSM lacks
CKM_ECDSA_SHA256, so we hash on the host and sign with raw mechanisms.

A module or token that cannot be reached (issue 11; hsm-config/README.md) is an
UNAVAILABLE error (HTTP 503), never a hang or a crash:

- every call waits at most LOCK_SECONDS for the process's token lock, so a call stuck in
  the module (a network HSM that stopped answering) makes the others fail instead of
  queueing behind it. The stuck C call itself cannot be bounded from Python: only the
  module's own timeouts (a network HSM client's) and gunicorn's worker timeout end it.
- the library is re-initialised (C_Finalize + C_Initialize, which ends every session of
  the process) to see a token that came back, at most once per backoff window: 1 s,
  doubling while the token stays away, at most REINIT_MAX_SECONDS.
- a key opened with open_key() knows where it lives (token label/serial, CKA_ID, public
  key): after a reset it finds itself again, and a signature that fails with a session or
  handle error is retried once on a re-opened session.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

LOCK_SECONDS = 5.0               # longest wait for the token lock before UNAVAILABLE
REINIT_FIRST_SECONDS = 1.0       # automatic re-initialisation: at most once a second ...
REINIT_MAX_SECONDS = 5.0         # ... the window doubling to this while the token stays away

_log = logging.getLogger("udun.token")
_lock = threading.RLock()
_lib: Any = None
_lib_path: str | None = None
_sessions: dict[bytes, tuple[Any, bytes]] = {}   # token serial -> (session, PIN fingerprint)
_PIN_KEY = os.urandom(32)          # fingerprints are HMACs under a per-process key
# Bumped by refresh(): re-initialising invalidates every session and object handle, and
# a stale handle may silently name another token's object, so keys check it.
_generation = 0
_last_init = -math.inf             # time.monotonic() of the last C_Initialize (load or re-init)
_reinit_window = REINIT_FIRST_SECONDS
_reinits = 0                       # automatic and explicit re-initialisations (tests, health)
_down: dict[str, str] = {}         # keys' tokens that cannot be reached now -> why (one log line each)
_module_error = ""                 # why the module did not load or initialise, for the next message

# Errors after which the session or the object handle cannot be trusted any more: the
# token went away (and may be back), the HSM restarted, or the library was reset under us.
_LOST: tuple[type[Exception], ...] = (
    p11e.SessionHandleInvalid, p11e.SessionClosed, p11e.ObjectHandleInvalid, p11e.KeyHandleInvalid,
    p11e.DeviceRemoved, p11e.TokenNotPresent, p11e.TokenNotRecognised, p11e.DeviceError,
    p11e.GeneralError, p11e.UserNotLoggedIn,
)


def _lost(e: BaseException) -> bool:
    """A session/handle error worth one retry on a re-opened session."""
    if isinstance(e, _LOST):
        return True
    # CKR_CRYPTOKI_NOT_INITIALIZED has no class of its own in python-pkcs11: a failed
    # C_Initialize (a network HSM that was down at the last re-initialisation) leaves it.
    return type(e) is p11e.PKCS11Error and "not initialized" in str(e)


def translate(e: Exception, what: str) -> PkiError:
    """Map a python-pkcs11 error to PkiError; the message never holds the PIN."""
    if isinstance(e, PkiError):
        return e
    if isinstance(e, (p11e.PinIncorrect, p11e.PinInvalid, p11e.PinLenRange)):
        return PkiError(ErrorKind.PIN, f"{what}: the PIN is incorrect")
    if isinstance(e, p11e.PinLocked):            # the token's own counter (a real USB key)
        return PkiError(ErrorKind.PIN_LOCKED, f"{what}: the token has locked its PIN (its security officer "
                                              "unblocks it)")
    if isinstance(e, p11e.PinExpired):
        return PkiError(ErrorKind.PIN, f"{what}: the PIN has expired (set a new one)")
    if isinstance(e, p11e.NoSuchToken):
        return PkiError(ErrorKind.NOT_FOUND, f"{what}: token not present")
    if _lost(e):
        return PkiError(ErrorKind.UNAVAILABLE, f"{what}: the token cannot be reached ({type(e).__name__}); "
                                               "retry later")
    if isinstance(e, p11e.NoSuchKey):
        return PkiError(ErrorKind.NOT_FOUND, f"{what}: no such key on the token")
    if isinstance(e, (p11e.AttributeSensitive, p11e.KeyUnextractable, p11e.KeyNotWrappable)):
        return PkiError(ErrorKind.TOKEN, f"{what}: the key is sensitive and cannot be exported")
    if isinstance(e, (p11e.MechanismInvalid, p11e.FunctionNotSupported)):
        return PkiError(ErrorKind.UNSUPPORTED, f"{what}: the token does not support this mechanism")
    return PkiError(ErrorKind.TOKEN, f"{what}: token error {type(e).__name__}")


def _busy(what: str) -> PkiError:
    return PkiError(ErrorKind.UNAVAILABLE, f"{what}: the token is busy (another call has held it for more than "
                                           f"{LOCK_SECONDS:g} s); retry later")


@contextmanager
def _locked(what: str) -> Iterator[None]:
    """The process's token lock, waited for at most LOCK_SECONDS (then UNAVAILABLE)."""
    if not _lock.acquire(timeout=LOCK_SECONDS):
        raise _busy(what)
    try:
        yield
    finally:
        _lock.release()


# --- outages: backoff and one log line each ------------------------------------------

def retry_after() -> int:
    """Whole seconds until the next automatic re-initialisation may run (Retry-After).

    Without the token lock: an answer that says "come back later" must not wait for it."""
    left = _last_init + _reinit_window - time.monotonic()
    return max(1, math.ceil(left))


def reinit_count() -> int:
    """How many times this process re-initialised the library (tests, health checks)."""
    return _reinits


def _reinit_due() -> bool:
    return time.monotonic() - _last_init >= _reinit_window


def _backoff() -> None:
    """A re-initialisation did not bring the wanted token or module back: wait longer."""
    global _reinit_window
    _reinit_window = min(_reinit_window * 2, REINIT_MAX_SECONDS)


def _reset_backoff() -> None:
    global _reinit_window
    _reinit_window = REINIT_FIRST_SECONDS


def _outage(what: str, why: str) -> None:
    """Log once when a key's token (or the module) cannot be reached; requests refused
    meanwhile do not log, or an outage would flood the log."""
    if what not in _down:
        _log.warning("%s cannot be reached (%s); retrying with a backoff of at most %g s",
                     what, why, REINIT_MAX_SECONDS)
    _down[what] = why


def _recovered(what: str) -> None:
    if _down.pop(what, None) is not None:
        _log.warning("%s can be reached again", what)


def _module_name(settings: Settings) -> str:
    return f"the PKCS#11 module {settings.pkcs11_module} (UDUN_PKCS11_MODULE)"


# --- the library -----------------------------------------------------------------------

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
    """The process's PKCS#11 library, loaded and initialised once (after fork, never before).

    A module that is missing, fails to load or to initialise (a network HSM's client that
    cannot connect) is UNAVAILABLE, and tried again at most once per backoff window.
    """
    global _lib, _lib_path, _last_init, _module_error
    with _locked("loading the PKCS#11 module"):
        if _lib is not None and _lib_path != settings.pkcs11_module:
            raise PkiError(ErrorKind.INTERNAL, "a different PKCS#11 module is already loaded in this process")
        if _lib is not None and _lib.initialized:
            return _lib
        name = _module_name(settings)
        if not _reinit_due():
            raise PkiError(ErrorKind.UNAVAILABLE, f"{name} {_module_error or 'is not initialised'} "
                                                  f"(trying again in {retry_after()} s)")
        _last_init = time.monotonic()
        if _lib is None:
            if settings.uses_softhsm:
                write_softhsm_conf(settings)
                # SoftHSM reads its config at C_Initialize; this must precede loading.
                os.environ["SOFTHSM2_CONF"] = str(settings.softhsm_conf)
            if not os.path.exists(settings.pkcs11_module):
                _module_error = "does not exist"
                _backoff()
                raise PkiError(ErrorKind.UNAVAILABLE, f"{name} does not exist")
        try:
            if _lib is None:
                _lib = pkcs11.lib(settings.pkcs11_module)      # dlopen and C_Initialize
                _lib_path = settings.pkcs11_module
            else:
                _lib.initialize()     # finalised before a fork, or a re-initialisation failed
        except Exception as e:
            _module_error = f"could not be loaded or initialised ({type(e).__name__})"
            _backoff()
            raise PkiError(ErrorKind.UNAVAILABLE, f"{name} {_module_error}") from e
        _module_error = ""
        _reset_backoff()
        return _lib


def _reinitialise(lib: Any) -> None:
    """C_Finalize + C_Initialize: every session and object handle of this process ends."""
    global _generation, _last_init, _reinits
    _sessions.clear()
    _generation += 1
    _last_init = time.monotonic()
    _reinits += 1
    try:
        lib.reinitialize()
    except Exception as e:
        # python-pkcs11 marks the library uninitialised; library() initialises it again
        # once the backoff window has passed.
        raise PkiError(ErrorKind.UNAVAILABLE, "re-initialising the PKCS#11 module failed "
                                              f"({type(e).__name__}); retry later") from e


def refresh(settings: Settings) -> None:
    """Re-initialise the library now so that tokens created by other processes appear.

    This ends every session of this process, so cached sessions are dropped. Operator
    commands call it after making a token; the automatic path (a token that went away)
    goes through the backoff in find_token and TokenKey instead.
    """
    with _locked("re-initialising the PKCS#11 module"):
        _reinitialise(library(settings))


def finalize_before_fork() -> None:
    """Close every session and C_Finalize, so that no PKCS#11 state crosses a fork: each
    worker initialises the module itself on first use (PKCS#11 wants a child to call
    C_Initialize of its own rather than use its parent's state; a network HSM client holds
    sockets and threads that do not survive a fork)."""
    global _last_init, _reinit_window
    with _locked("finalising the PKCS#11 module"):
        close_all()
        if _lib is not None and _lib.initialized:
            try:
                _lib.finalize()
            except Exception:  # noqa: BLE001  a module that fails to finalise is initialised anew anyway
                pass
        _last_init, _reinit_window = -math.inf, REINIT_FIRST_SECONDS   # the worker's first use initialises at once


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
            # SoftHSM's file store can be caught mid-write by another process: retry. It
            # also answers GeneralError once a token's directory went away, until the
            # library is re-initialised (find_token does that, with the backoff).
            if attempt == 2:
                raise PkiError(ErrorKind.UNAVAILABLE,
                               f"listing the tokens of {_module_name(settings)} failed ({type(e).__name__})") from e
            time.sleep(0.05 * (attempt + 1))
        except Exception as e:
            if _lost(e):
                raise PkiError(ErrorKind.UNAVAILABLE,
                               f"listing the tokens of {_module_name(settings)} failed ({type(e).__name__})") from e
            raise translate(e, "listing tokens") from e
    return []


def list_tokens(settings: Settings) -> list[TokenInfo]:
    """Tokens present in the configured module (initialised ones only)."""
    refresh(settings)
    return [
        TokenInfo(t.label, t.serial.decode(errors="replace"), t.manufacturer_id, t.model, True)
        for t in _tokens(settings)
    ]


def _serial_of(t: Any) -> str:
    return str(t.serial.decode(errors="replace"))


def _name(label: str | None, serial: str | None) -> str:
    if label and serial:
        return f"token {label!r} (serial {serial})"
    return f"token {label!r}" if label else f"token with serial {serial!r}"


def _pick(tokens: list[Any], label: str | None, serial: str | None) -> Any | None:
    """The token named by serial (its label checked too) or by label; None if absent.

    A serial names one token; the label must agree, and a label whose token has another
    serial is a configuration error, not an absent token: both are said plainly.
    """
    if serial is not None:
        by_serial = [t for t in tokens if _serial_of(t) == serial]
        if by_serial:
            if label is not None and by_serial[0].label != label:
                raise PkiError(ErrorKind.TOKEN, f"the token with serial {serial} is labelled "
                                                f"{by_serial[0].label!r}, not {label!r}")
            return by_serial[0]
        if label is not None:
            others = sorted(_serial_of(t) for t in tokens if t.label == label)
            if others:
                raise PkiError(ErrorKind.TOKEN, f"token {label!r} has serial {', '.join(others)}, not the "
                                                f"configured {serial}")
        return None
    found = [t for t in tokens if t.label == label]
    if len(found) > 1:
        raise PkiError(ErrorKind.CONFLICT, f"more than one token with label {label!r}; name it by --serial "
                                           "(or UDUN_*_TOKEN_SERIAL)")
    return found[0] if found else None


def _reinit_for(settings: Settings, name: str) -> None:
    """Re-initialise the library to look for ``name`` again, within the backoff: while no
    outage is going on, wait for the rest of the first window (at most 1 s: a token another
    process just made must appear); during one, fail at once (HTTP 503, never a queue)."""
    wait = _last_init + _reinit_window - time.monotonic()
    if wait > 0:
        if _reinit_window > REINIT_FIRST_SECONDS:
            if _module_error:             # the module itself is what is missing
                raise PkiError(ErrorKind.UNAVAILABLE, f"{_module_name(settings)} {_module_error} "
                                                      f"(trying again in {math.ceil(wait)} s)")
            raise PkiError(ErrorKind.NOT_FOUND, f"no {name} (looking again in {math.ceil(wait)} s)")
        time.sleep(wait)
    _reinitialise(library(settings))


def find_token(settings: Settings, label: str | None = None, serial: str | None = None, *,
               fresh: bool = False) -> Any:
    """Find a token by serial (label checked too) or by label.

    A token not seen is looked for again after re-initialising the library (it may have
    been created or come back meanwhile), within the backoff; ``fresh`` re-initialises
    before the first look (a session or handle of it failed). Absent: NOT_FOUND (the
    serving paths, open_key, make that UNAVAILABLE).
    """
    if not label and not serial:
        raise PkiError(ErrorKind.BAD_INPUT, "name a token by --label or --serial")
    name = _name(label, serial)

    def look() -> Any | None:
        return _pick(_tokens(settings), label, serial)

    with _locked(f"finding {name}"):
        if fresh:
            _reinit_for(settings, name)
        listing: PkiError | None = None
        try:
            found = look()
        except PkiError as e:
            if e.kind is not ErrorKind.UNAVAILABLE or fresh:
                if e.kind is ErrorKind.UNAVAILABLE:
                    _backoff()
                raise
            found, listing = None, e      # SoftHSM after a token's directory went away; no module
        if found is None and not fresh:
            try:
                _reinit_for(settings, name)
            except PkiError as e:
                if listing is None:
                    raise
                raise listing from e      # why it could not look says more than "no token"
            try:
                found = look()
            except PkiError as e:
                if e.kind is ErrorKind.UNAVAILABLE:
                    _backoff()
                raise
        if found is None:
            _backoff()
            raise PkiError(ErrorKind.NOT_FOUND, f"no {name}")
        return found


def _fingerprint(pin: str) -> bytes:
    return hmac.new(_PIN_KEY, pin.encode(), hashlib.sha256).digest()


def session(settings: Settings, label: str | None, pin: str, serial: str | None = None, *,
            fresh: bool = False) -> Any:
    """The process's one logged-in read/write session on a token (by label or serial).

    A cached session is only handed out for the PIN that opened it: any other PIN logs
    in afresh, so a wrong PIN fails as it would on a new session. ``fresh``: re-initialise
    first (within the backoff), because a session or handle of this token failed.
    """
    with _locked(f"opening a session on {_name(label, serial)}"):
        token = find_token(settings, label=label, serial=serial, fresh=fresh)
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
            token = find_token(settings, label=label, serial=serial)
            try:
                s = token.open(user_pin=pin, rw=True)
            except Exception as e:
                raise translate(e, f"logging in to token {label!r}") from e
        except Exception as e:
            raise translate(e, f"logging in to token {label!r}") from e
        _sessions[token.serial] = (s, _fingerprint(pin))
        _reset_backoff()
        return s


def logged_in_labels() -> set[str]:
    """The labels of the tokens this process holds a logged-in session on (tests and /healthz)."""
    with _locked("listing sessions"):
        return {s.token.label for s, _ in _sessions.values()}


def close_all() -> None:
    """Close every cached session (end of a command, before fork); open keys go stale."""
    global _generation
    with _locked("closing sessions"):
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


def _drop_session(token_serial: bytes) -> None:
    """Forget (and close) the cached session of one token after it failed."""
    cached = _sessions.pop(token_serial, None)
    if cached is not None:
        _close(cached[0])


# --- keys ------------------------------------------------------------------------------

_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_timers: dict[str, Any] = {}
_timers_lock = threading.Lock()     # not the token lock: a stuck token call must not hold up metrics


def _timer(key_type: KeyType) -> Any:
    """The ``udun_token_sign_seconds`` child for a key type.

    prometheus-client is imported on the first signature, not with this module (~45 ms
    that every CLI command would pay), and the child made then, after fork, so a worker's
    values go to prometheus-client's multiprocess files (udun.server.MetricsDir).
    """
    child = _timers.get(key_type.value)
    if child is None:
        with _timers_lock:
            histogram = _timers.get("")
            if histogram is None:
                from prometheus_client import Histogram

                histogram = _timers[""] = Histogram(
                    "udun_token_sign_seconds", "Seconds per signature on a PKCS#11 token (TokenKey.sign_digest: "
                    "the lock wait and a retry after a token reset included)", ["key_type"], buckets=_BUCKETS)
            child = _timers[key_type.value] = histogram.labels(key_type.value)
    return child


class TokenKey:
    """A private key on a token, behind the RawSigner seam.

    Keys from open_key() can re-open themselves (``reopen``); keys from load_key() or
    generate_key() are tied to their session and go stale with it.
    """

    def __init__(self, private: Any, key_type: KeyType, public_key_der: bytes, key_id: bytes,
                 reopen: Callable[[bool], tuple[Any, bytes]] | None = None) -> None:
        self._private = private
        self._key_type = key_type
        self._public_key_der = public_key_der
        self.key_id = key_id
        self._generation = _generation
        # reopen(reset) -> (private key object, token serial): finds this key again, after
        # re-initialising the library when ``reset`` (and the backoff allows it).
        self._reopen = reopen
        self._token_serial: bytes | None = None
        self._timer: Any = None

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
        timer = self._timer or self._make_timer()
        started = time.perf_counter()
        # The hot path (make bench token_sign_*_ratio): the lock inline, uncontended first.
        if not (_lock.acquire(False) or _lock.acquire(timeout=LOCK_SECONDS)):
            timer.observe(time.perf_counter() - started)
            raise _busy("signing on the token")
        try:
            if self._generation != _generation:
                if self._reopen is None:
                    raise PkiError(ErrorKind.TOKEN, "the token session was reset; open the key again")
                self._reopen_now(reset=False)
            try:
                return self._raw_sign(digest, scheme)
            except Exception as e:
                if self._reopen is None or not _lost(e):
                    raise translate(e, "signing on the token") from e
                return self._retry(type(e).__name__, digest, scheme)
        finally:
            _lock.release()
            timer.observe(time.perf_counter() - started)

    def _make_timer(self) -> Any:
        self._timer = _timer(self._key_type)
        return self._timer

    def _retry(self, first: str, digest: bytes, scheme: SigScheme) -> bytes:
        """The session or handle went away (token removed and back, HSM restarted, library
        reset): re-open once; a second failure is the answer (UNAVAILABLE, HTTP 503)."""
        what = f"signing with key {self.key_id.hex()} failed ({first})"
        try:
            self._reopen_now(reset=True)
        except PkiError as e:
            raise PkiError(e.kind, f"{what}, re-opening it: {e.message}") from e
        try:
            return self._raw_sign(digest, scheme)
        except Exception as e:
            err = translate(e, f"{what}, and again after re-opening it")
            raise PkiError(ErrorKind.UNAVAILABLE if _lost(e) else err.kind, err.message) from e

    def _reopen_now(self, reset: bool) -> None:
        assert self._reopen is not None
        if reset and self._token_serial is not None:
            _drop_session(self._token_serial)
        self._private, self._token_serial = self._reopen(reset)
        self._generation = _generation

    def _raw_sign(self, digest: bytes, scheme: SigScheme) -> bytes:
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


def _key_pair(s: Any, key_id: bytes | None = None, label: str | None = None) -> tuple[Any, Any]:
    try:
        private = s.get_key(object_class=ObjectClass.PRIVATE_KEY, id=key_id, label=label)
        public = s.get_key(object_class=ObjectClass.PUBLIC_KEY, id=private.id)
    except p11e.MultipleObjectsReturned as e:
        raise PkiError(ErrorKind.CONFLICT, "more than one key matches; name it by id") from e
    except Exception as e:
        raise translate(e, "finding the key") from e
    return private, public


def load_key(s: Any, key_id: bytes | None = None, label: str | None = None) -> TokenKey:
    """Find a key pair on the token by CKA_ID (or label)."""
    private, public = _key_pair(s, key_id, label)
    return TokenKey(private, _key_type_of(public), _public_der(public), bytes(private.id))


def configured_serial(settings: Settings, label: str) -> str | None:
    """The serial settings give the token ``label`` (UDUN_ROOT/CA/ONLINE_TOKEN_SERIAL): a
    node's own view of where its slot is; the records only name the label."""
    serials = {serial for name, serial in ((settings.root_token, settings.root_token_serial),
                                           (settings.ca_token, settings.ca_token_serial),
                                           (settings.online_token, settings.online_token_serial))
               if name == label and serial}
    if len(serials) > 1:
        raise PkiError(ErrorKind.BAD_INPUT, f"token {label!r} is given different serials "
                                            f"({', '.join(sorted(serials))}) in UDUN_*_TOKEN_SERIAL")
    return next(iter(serials), None)


def open_key(settings: Settings, label: str, key_id: bytes, pin: Callable[[], str]) -> TokenKey:
    """The key ``key_id`` (the CKA_ID the CA's records hold) on the token ``label`` (by its
    configured serial where one is set), logged in with ``pin()``.

    The key re-opens itself after a reset or a lost session, checking that the public key
    is still the same. A token that is not there is UNAVAILABLE (retry later); a token
    without the key is TOKEN (an old copy of it, or the wrong one: not healed by waiting).
    The PIN is asked of ``pin`` each time and never kept here.
    """
    serial = configured_serial(settings, label)
    name = _name(label, serial)
    key_name = f"key {key_id.hex()} on {name}"

    def find(fresh: bool) -> tuple[Any, Any, bytes]:
        try:
            s = session(settings, label, pin(), serial, fresh=fresh)
        except PkiError as e:
            err = e
            if e.kind is ErrorKind.NOT_FOUND:        # a token named by settings or records: away
                err = PkiError(ErrorKind.UNAVAILABLE, f"{name} is not present in {_module_name(settings)}; "
                                                      f"retry in {retry_after()} s")
            if err.kind is ErrorKind.UNAVAILABLE:
                _outage(name, err.message)
            if err is e:
                raise
            raise err from e
        _recovered(name)
        try:
            private, public = _key_pair(s, key_id)
        except PkiError as e:
            if e.kind is not ErrorKind.NOT_FOUND:
                raise
            raise PkiError(ErrorKind.TOKEN, f"{name} holds no key with id {key_id.hex()}, which the database "
                                            "names: an old copy of the token? (hsm-config/README.md)") from e
        return private, public, bytes(s.token.serial)

    with _locked(f"opening the {key_name}"):
        try:
            private, public, token_serial = find(False)
        except PkiError as e:
            if e.kind is not ErrorKind.UNAVAILABLE:
                raise
            private, public, token_serial = find(True)     # e.g. a cached session that died
        public_der = _public_der(public)

        def reopen(reset: bool) -> tuple[Any, bytes]:
            again, pub, where = find(reset)
            if _public_der(pub) != public_der:
                raise PkiError(ErrorKind.TOKEN, f"the {key_name} is not the key opened before: another token "
                                                "answers to that name now")
            return again, where

        key = TokenKey(private, _key_type_of(public), public_der, key_id, reopen=reopen)
        key._token_serial = token_serial
        return key


def destroy_key(s: Any, key_id: bytes) -> None:
    """Destroy a key pair (private and public objects) with CKA_ID ``key_id`` (C_DestroyObject)."""
    try:
        for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
            for obj in list(s.get_objects({Attribute.CLASS: cls, Attribute.ID: key_id})):
                obj.destroy()
    except Exception as e:
        raise translate(e, "destroying the key") from e


def destroy_certificates(s: Any, key_id: bytes) -> None:
    """Destroy the certificate objects stored under CKA_ID ``key_id``."""
    try:
        for obj in list(s.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: key_id})):
            obj.destroy()
    except Exception as e:
        raise translate(e, "destroying a certificate on the token") from e


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
