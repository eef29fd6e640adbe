"""udun.toml: the UDUN_* settings as a file, one key per variable (the environment wins).

A key is its variable's name in lower case without ``UDUN_`` (``database_url`` is
UDUN_DATABASE_URL). The file is flat: no tables, so that every key maps onto exactly one
variable and a grep for the variable's name finds it. Secrets never go in it: PINs stay in
UDUN_*_PIN or the 0600 files under secrets/, the admin API key in the environment.
"""
from __future__ import annotations

import difflib
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping
from urllib.parse import urlsplit

from pkicore.errors import ErrorKind, PkiError

# Key -> the TOML type it takes. "path" is a string; a relative one is relative to the
# file's own directory (as an include would be), not to wherever the process was started.
KEYS: Mapping[str, str] = MappingProxyType({
    "home": "path",
    "database_url": "str",
    "pkcs11_module": "str",
    "base_url": "str",
    "ca_token": "str",
    "root_token": "str",
    "online_token": "str",
    "ca_token_serial": "str",
    "root_token_serial": "str",
    "online_token_serial": "str",
    "log_file": "path",
    "log_level": "str",
    "client_days": "int",
    "crl_hours": "int",
    "ocsp_minutes": "int",
    "ocsp_cache_size": "int",
    "ocsp_responder_days": "int",
    "tsa_days": "int",
    "tsa_policy": "str",
    "tsa_accuracy_ms": "int",
    "signing_window_minutes": "int",
    "require_challenge": "bool",
    "account_binding": "bool",
    "limit_timezone": "str",
    "otp_above": "str",
    "pin_tries": "int",
    "challenge_seconds": "int",
    "challenge_quota": "int",
    "rate_limit_per_address": "str",
    "rate_limit_per_key": "str",
    "operator_session_minutes": "int",
    "renew_before_days": "int",
    "audit_checkpoint_minutes": "int",
    "trust_file": "path",
    "tls_cert": "path",
    "tls_key": "path",
    "tls_client_ca": "path",
    "tls_client_auth": "str",
    "gunicorn_config": "path",
})

# Secrets are refused by name, with where they belong instead: a configuration file gets
# copied, committed and shown in tickets; a PIN file is 0600 and read by one user.
SECRETS: Mapping[str, str] = MappingProxyType({
    "ca_pin": "UDUN_CA_PIN or $UDUN_HOME/secrets/ca.pin (0600)",
    "online_pin": "UDUN_ONLINE_PIN or $UDUN_HOME/secrets/online.pin (0600)",
    "pin": "UDUN_PIN or the prompt",
    "so_pin": "UDUN_SO_PIN or the prompt",
    "admin_api_key": "UDUN_ADMIN_API_KEY in the environment (a systemd EnvironmentFile of mode 0600)",
})

_TYPE_NAMES = {"str": "a string", "path": "a string (a file path)", "int": "an integer", "bool": "true or false"}


@dataclass(frozen=True)
class ConfigFile:
    """One udun.toml as the environment would carry it: UDUN_* name -> value."""

    path: Path
    values: Mapping[str, str]

    def where(self, variable: str) -> str:
        """How an error names a value that came from this file."""
        return f"{key_of(variable)} in {self.path}"


def variable_of(key: str) -> str:
    return "UDUN_" + key.upper()


def key_of(variable: str) -> str:
    return variable.removeprefix("UDUN_").lower()


def _bad(path: Path, message: str) -> PkiError:
    return PkiError(ErrorKind.BAD_INPUT, f"configuration file {path}: {message}")


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, list):
        return "an array"
    return "a date or time"


def _value(path: Path, key: str, value: object) -> str:
    """The value as its variable would carry it, after checking its TOML type."""
    kind = KEYS[key]
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        # bool is an int in Python: `client_days = true` must not pass as 1.
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise _bad(path, f"{key} must be {_TYPE_NAMES[kind]}, not {_toml_type(value)} ({variable_of(key)})")
    if kind == "bool":
        return "true" if value else "false"
    text = str(value)
    if kind == "path" and text:
        text = str((path.parent / Path(text).expanduser()))
    return text


def _refuse_unknown(path: Path, key: str, value: object) -> PkiError:
    if key in SECRETS:
        return _bad(path, f"{key} is a secret and is not read from a configuration file: use {SECRETS[key]}")
    if isinstance(value, dict):
        return _bad(path, f"[{key}] tables are not used: every key is at the top level, named as its "
                          f"UDUN_ variable without the prefix (e.g. {key}_... = ...)")
    close = difflib.get_close_matches(key, list(KEYS), n=1, cutoff=0.8)
    hint = f" (did you mean {close[0]}?)" if close else \
        " (keys are the UDUN_* variables' names in lower case without UDUN_, e.g. database_url)"
    return _bad(path, f"unknown key {key!r}{hint}")


def _refuse_password(path: Path, url: str) -> None:
    """A password in database_url is a secret in a file that is not meant to hold one."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None      # settings reports a malformed URL with the variable's name
    if password:
        raise _bad(path, "database_url carries a password: put the URL in UDUN_DATABASE_URL (an "
                         "EnvironmentFile of mode 0600) or the password in a PostgreSQL passfile "
                         "(PGPASSFILE, ~/.pgpass)")


def read(path: Path, *, home_allowed: bool) -> ConfigFile:
    """Read and check one udun.toml; every error names the file and the key."""
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise _bad(path, "is a directory, not a TOML file")
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise _bad(path, f"not valid TOML: {e}") from e
    except UnicodeDecodeError as e:
        raise _bad(path, "not valid TOML: not UTF-8 text") from e
    except OSError as e:
        raise _bad(path, f"cannot be read: {e.strerror or e}") from e
    # Whoever can write this file chooses the database, the trust anchors and the TLS key.
    if st.st_mode & stat.S_IWOTH and not stat.S_ISCHR(st.st_mode):
        raise _bad(path, f"is writable by every user (mode {stat.S_IMODE(st.st_mode):04o}): chmod o-w")
    values: dict[str, str] = {}
    for key, value in data.items():
        if key not in KEYS:
            raise _refuse_unknown(path, key, value)
        if key == "home" and not home_allowed:
            raise _bad(path, "home cannot be set in $UDUN_HOME/udun.toml itself: set UDUN_HOME, or name "
                             "the file with UDUN_CONFIG")
        text = _value(path, key, value)
        if key == "database_url":
            _refuse_password(path, text)
        values[variable_of(key)] = text
    return ConfigFile(path=path, values=MappingProxyType(values))
