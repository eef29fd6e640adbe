"""Creating SoftHSM tokens (python-pkcs11 cannot initialise a token).

Real USB keys come initialised from their vendor; only SoftHSM needs this.

PINs never go on a command line (issue 10): softhsm2-util only takes them as arguments
(without --pin it reads the terminal, not stdin), and every local user can read another
process's arguments. So the token is initialised here, in this process, through the
PKCS#11 API: C_InitToken, then C_Login as SO and C_InitPIN. python-pkcs11 binds neither
C_InitToken nor C_InitPIN on a slot, so these few calls go through ctypes on the same
module python-pkcs11 has loaded. dlopen() of the same file returns the same library, so
both share one C_Initialize (python-pkcs11's, with no locking arguments: every call is
made under keystore.token's lock). The library is never finalised here; token.refresh()
re-initialises it afterwards, as for a token made by another process.
"""
from __future__ import annotations

import ctypes
from typing import Any

from keystore import token
from config.settings import Settings
from pkicore.errors import ErrorKind, PkiError

MIN_PIN = 4
MAX_PIN = 255

# PKCS#11 v2.40 constants (pkcs11t.h).
_CKR_OK = 0x000
_CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191
_CKR_BUFFER_TOO_SMALL = 0x150
_CKF_TOKEN_INITIALIZED = 0x400
_CKF_RW_SESSION = 0x2
_CKF_SERIAL_SESSION = 0x4
_CKU_SO = 0

# CK_RV -> (kind, words) for the failures a user can act on; the rest are TOKEN errors.
_RV_MEANING: dict[int, tuple[ErrorKind, str]] = {
    0x0A0: (ErrorKind.PIN, "the SO PIN is incorrect"),                       # CKR_PIN_INCORRECT
    0x0A1: (ErrorKind.BAD_INPUT, "the PIN is not acceptable to the token"),   # CKR_PIN_INVALID
    0x0A2: (ErrorKind.BAD_INPUT, f"a PIN must be {MIN_PIN} to {MAX_PIN} bytes long"),  # CKR_PIN_LEN_RANGE
    0x0A4: (ErrorKind.PIN, "the SO PIN is locked"),                           # CKR_PIN_LOCKED
    0x0E0: (ErrorKind.NOT_FOUND, "token not present"),                        # CKR_TOKEN_NOT_PRESENT
    0x0E2: (ErrorKind.TOKEN, "the token is write-protected"),                 # CKR_TOKEN_WRITE_PROTECTED
    0x0B6: (ErrorKind.CONFLICT, "the slot has open sessions"),                # CKR_SESSION_EXISTS
    0x003: (ErrorKind.NOT_FOUND, "no such slot"),                             # CKR_SLOT_ID_INVALID
    0x190: (ErrorKind.TOKEN, "the PKCS#11 module is not initialised"),        # CKR_CRYPTOKI_NOT_INITIALIZED
    0x104: (ErrorKind.CONFLICT, "another user is logged in to the token: close its sessions first"),
    # CKR_USER_ANOTHER_ALREADY_LOGGED_IN
    0x0B7: (ErrorKind.CONFLICT, "a read-only session is open on the token: close it first"),
    # CKR_SESSION_READ_ONLY_EXISTS
}

_ULONG = ctypes.c_ulong          # CK_ULONG is C's unsigned long on every platform
_RV = _ULONG
_SLOT_ID = _ULONG
_SESSION = _ULONG
_PTR_ULONG = ctypes.POINTER(_ULONG)
_PTR_UTF8 = ctypes.POINTER(ctypes.c_ubyte)


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]


class _TokenInfo(ctypes.Structure):
    """CK_TOKEN_INFO (natural alignment: cryptoki packs structures only on Windows)."""

    _fields_ = [
        ("label", ctypes.c_ubyte * 32), ("manufacturerID", ctypes.c_ubyte * 32),
        ("model", ctypes.c_ubyte * 16), ("serialNumber", ctypes.c_ubyte * 16),
        ("flags", _ULONG),
        ("ulMaxSessionCount", _ULONG), ("ulSessionCount", _ULONG),
        ("ulMaxRwSessionCount", _ULONG), ("ulRwSessionCount", _ULONG),
        ("ulMaxPinLen", _ULONG), ("ulMinPinLen", _ULONG),
        ("ulTotalPublicMemory", _ULONG), ("ulFreePublicMemory", _ULONG),
        ("ulTotalPrivateMemory", _ULONG), ("ulFreePrivateMemory", _ULONG),
        ("hardwareVersion", _Version), ("firmwareVersion", _Version),
        ("utcTime", ctypes.c_ubyte * 16),
    ]


# The head of CK_FUNCTION_LIST, in the standard's order (pkcs11f.h), up to C_Logout; the
# rest of the table is never read. Each entry: name, argument types (all return CK_RV).
_FUNCTIONS: list[tuple[str, list[Any]]] = [
    ("C_Initialize", [ctypes.c_void_p]),
    ("C_Finalize", [ctypes.c_void_p]),
    ("C_GetInfo", [ctypes.c_void_p]),
    ("C_GetFunctionList", [ctypes.c_void_p]),
    ("C_GetSlotList", [ctypes.c_ubyte, _PTR_ULONG, _PTR_ULONG]),
    ("C_GetSlotInfo", [_SLOT_ID, ctypes.c_void_p]),
    ("C_GetTokenInfo", [_SLOT_ID, ctypes.POINTER(_TokenInfo)]),
    ("C_GetMechanismList", [_SLOT_ID, _PTR_ULONG, _PTR_ULONG]),
    ("C_GetMechanismInfo", [_SLOT_ID, _ULONG, ctypes.c_void_p]),
    ("C_InitToken", [_SLOT_ID, _PTR_UTF8, _ULONG, _PTR_UTF8]),
    ("C_InitPIN", [_SESSION, _PTR_UTF8, _ULONG]),
    ("C_SetPIN", [_SESSION, _PTR_UTF8, _ULONG, _PTR_UTF8, _ULONG]),
    ("C_OpenSession", [_SLOT_ID, _ULONG, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(_SESSION)]),
    ("C_CloseSession", [_SESSION]),
    ("C_CloseAllSessions", [_SLOT_ID]),
    ("C_GetSessionInfo", [_SESSION, ctypes.c_void_p]),
    ("C_GetOperationState", [_SESSION, _PTR_UTF8, _PTR_ULONG]),
    ("C_SetOperationState", [_SESSION, _PTR_UTF8, _ULONG, _ULONG, _ULONG]),
    ("C_Login", [_SESSION, _ULONG, _PTR_UTF8, _ULONG]),
    ("C_Logout", [_SESSION]),
]


class _FunctionList(ctypes.Structure):
    _fields_ = [("version", _Version)] + [(name, ctypes.c_void_p) for name, _ in _FUNCTIONS]


class _Module:
    """The PKCS#11 calls this module makes, bound from the module's function list."""

    def __init__(self, path: str) -> None:
        try:
            dll = ctypes.CDLL(path)
            get_list = dll.C_GetFunctionList
        except (OSError, AttributeError) as e:
            raise PkiError(ErrorKind.TOKEN, f"cannot load the PKCS#11 module {path}") from e
        get_list.restype = _RV
        get_list.argtypes = [ctypes.POINTER(ctypes.POINTER(_FunctionList))]
        table = ctypes.POINTER(_FunctionList)()
        rv = get_list(ctypes.byref(table))
        if rv != _CKR_OK or not table:
            raise PkiError(ErrorKind.TOKEN, f"the PKCS#11 module gave no function list (error 0x{rv:x})")
        self._dll = dll                  # keeps the library mapped
        self._fns: dict[str, Any] = {}
        for name, argtypes in _FUNCTIONS:
            address = getattr(table.contents, name)
            if not address:
                raise PkiError(ErrorKind.UNSUPPORTED, f"the PKCS#11 module lacks {name}")
            self._fns[name] = ctypes.CFUNCTYPE(_RV, *argtypes)(address)

    def call(self, name: str, *args: Any) -> int:
        return int(self._fns[name](*args))


_modules: dict[str, _Module] = {}


def _module(path: str) -> _Module:
    if path not in _modules:
        _modules[path] = _Module(path)
    return _modules[path]


def _check(rv: int, what: str) -> None:
    """Raise for a failed call; the message names the step and the code, never a PIN."""
    if rv == _CKR_OK:
        return
    kind, words = _RV_MEANING.get(rv, (ErrorKind.TOKEN, "token error"))
    raise PkiError(kind, f"{what}: {words} (CK_RV 0x{rv:x})")


def _secret(value: str) -> Any:
    """A PIN in a C buffer, so it can be wiped after the call."""
    raw = value.encode()
    return (ctypes.c_ubyte * max(len(raw), 1)).from_buffer_copy(raw or b"\0")


def _wipe(*buffers: Any) -> None:
    for b in buffers:
        ctypes.memset(b, 0, ctypes.sizeof(b))


def _free_slot(m: _Module) -> int:
    """The first slot whose token is not initialised (softhsm2-util's --free)."""
    count = _ULONG(0)
    for _ in range(3):
        _check(m.call("C_GetSlotList", 1, None, ctypes.byref(count)), "listing slots")
        slots = (_ULONG * max(count.value, 1))()
        rv = m.call("C_GetSlotList", 1, slots, ctypes.byref(count))
        if rv == _CKR_BUFFER_TOO_SMALL:
            continue
        _check(rv, "listing slots")
        for slot in list(slots)[:count.value]:
            info = _TokenInfo()
            _check(m.call("C_GetTokenInfo", slot, ctypes.byref(info)), "reading a slot's token")
            if not info.flags & _CKF_TOKEN_INITIALIZED:
                return int(slot)
        raise PkiError(ErrorKind.TOKEN, "SoftHSM has no free slot for a new token")
    raise PkiError(ErrorKind.TOKEN, "listing slots: the slot list kept changing")


def _init_in_slot(m: _Module, slot: int, label: str, pin: str, so_pin: str) -> str:
    """C_InitToken with the SO PIN, then set the user PIN as SO; returns the new serial."""
    so_buf, pin_buf = _secret(so_pin), _secret(pin)
    label_buf = (ctypes.c_ubyte * 32).from_buffer_copy(label.encode().ljust(32, b" "))
    try:
        _check(m.call("C_InitToken", slot, so_buf, len(so_pin.encode()), label_buf), "initialising the token")
        session = _SESSION(0)
        _check(m.call("C_OpenSession", slot, _CKF_SERIAL_SESSION | _CKF_RW_SESSION, None, None,
                      ctypes.byref(session)), "opening a session on the new token")
        try:
            _check(m.call("C_Login", session, _CKU_SO, so_buf, len(so_pin.encode())),
                   "logging in to the new token as SO")
            try:
                _check(m.call("C_InitPIN", session, pin_buf, len(pin.encode())),
                       "setting the new token's user PIN")
            finally:
                m.call("C_Logout", session)
        finally:
            m.call("C_CloseSession", session)
        info = _TokenInfo()
        _check(m.call("C_GetTokenInfo", slot, ctypes.byref(info)), "reading the new token")
        return bytes(info.serialNumber).decode(errors="replace").strip()
    finally:
        _wipe(so_buf, pin_buf)


def check_pin(pin: str, what: str = "PIN") -> None:
    """SoftHSM accepts 4..255 bytes; refuse early with a clear message."""
    if not MIN_PIN <= len(pin.encode()) <= MAX_PIN:
        raise PkiError(ErrorKind.BAD_INPUT, f"the {what} must be {MIN_PIN} to {MAX_PIN} bytes long")


def init_token(settings: Settings, label: str, pin: str, so_pin: str) -> str:
    """Initialise a new SoftHSM token in the next free slot; returns its serial.

    Creating a token re-initialises this process's PKCS#11 library (token.refresh), which
    ends every open session of the process.
    """
    if not settings.uses_softhsm:
        raise PkiError(ErrorKind.UNSUPPORTED,
                       "token init only works with SoftHSM; initialise a USB key with its vendor tool")
    if not label or len(label.encode()) > 32:
        raise PkiError(ErrorKind.BAD_INPUT, "a token label must be 1 to 32 bytes")
    check_pin(pin)
    check_pin(so_pin, "SO PIN")
    with token._lock:
        # list_tokens loads the library (SOFTHSM2_CONF from settings) and re-initialises
        # it, so the slot list below reflects tokens other processes made meanwhile.
        if any(t.label == label for t in token.list_tokens(settings)):
            raise PkiError(ErrorKind.CONFLICT, f"a token labelled {label!r} exists already")
        m = _module(settings.pkcs11_module)
        # python-pkcs11 initialised the library; this only guards against it not having.
        rv = m.call("C_Initialize", None)
        if rv not in (_CKR_OK, _CKR_CRYPTOKI_ALREADY_INITIALIZED):
            _check(rv, "initialising the PKCS#11 module")
        try:
            serial = _init_in_slot(m, _free_slot(m), label, pin, so_pin)
        except BaseException:
            try:
                token.refresh(settings)     # a half-made token must not leave stale state
            except PkiError:
                pass                        # the first error is the one to report
            raise
        token.refresh(settings)             # a fresh free slot, and the token seen by python-pkcs11
        found = token.find_token(settings, serial=serial)
        if found.label != label:
            raise PkiError(ErrorKind.INTERNAL, f"the new token {serial} does not carry the label {label!r}")
        return str(found.serial.decode())


def _slot_of(m: _Module, serial: str) -> int:
    """The slot whose token has this serial (slot ids change; serials do not)."""
    count = _ULONG(0)
    _check(m.call("C_GetSlotList", 1, None, ctypes.byref(count)), "listing slots")
    slots = (_ULONG * max(count.value, 1))()
    _check(m.call("C_GetSlotList", 1, slots, ctypes.byref(count)), "listing slots")
    for slot in list(slots)[:count.value]:
        info = _TokenInfo()
        if m.call("C_GetTokenInfo", slot, ctypes.byref(info)) == _CKR_OK and \
                bytes(info.serialNumber).decode(errors="replace").strip() == serial:
            return int(slot)
    raise PkiError(ErrorKind.NOT_FOUND, f"no token with serial {serial}")


def init_pin(settings: Settings, serial: str, so_pin: str, new_pin: str) -> None:
    """C_InitPIN as the security officer: a new user PIN for the token (unblocking it). Any
    PKCS#11 module, not SoftHSM only: python-pkcs11 does not bind C_InitPIN."""
    check_pin(new_pin)
    so_buf, pin_buf = _secret(so_pin), _secret(new_pin)
    with token._lock:
        m = _module(settings.pkcs11_module)
        rv = m.call("C_Initialize", None)
        if rv not in (_CKR_OK, _CKR_CRYPTOKI_ALREADY_INITIALIZED):
            _check(rv, "initialising the PKCS#11 module")
        try:
            session = _SESSION(0)
            _check(m.call("C_OpenSession", _slot_of(m, serial), _CKF_SERIAL_SESSION | _CKF_RW_SESSION, None, None,
                          ctypes.byref(session)), "opening a session on the token")
            try:
                _check(m.call("C_Login", session, _CKU_SO, so_buf, len(so_pin.encode())),
                       "logging in to the token as SO")
                try:
                    _check(m.call("C_InitPIN", session, pin_buf, len(new_pin.encode())), "setting the new user PIN")
                finally:
                    m.call("C_Logout", session)
            finally:
                m.call("C_CloseSession", session)
        finally:
            _wipe(so_buf, pin_buf)
