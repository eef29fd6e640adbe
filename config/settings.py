"""Configuration from the environment and udun.toml (the only place os.environ is read for
settings). The environment wins over the file; see README "Configuration file"."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping, cast
from urllib.parse import urlsplit

from config import tomlfile
from pkicore.errors import ErrorKind, PkiError
from pkicore.oids import DEFAULT_TSA_POLICY, RECORDS_POLICY

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
CONFIG_FILE_NAME = "udun.toml"
TlsClientAuth = Literal["none", "optional", "required"]


@dataclass(frozen=True)
class Settings:
    """Everything udun reads from its environment; see README "Configuration"."""

    home: Path
    database_url: str
    pkcs11_module: str
    base_url: str
    ca_token: str
    root_token: str
    client_days: int
    crl_hours: int = 24          # CRL validity: nextUpdate - thisUpdate
    ocsp_minutes: int = 60       # OCSP response validity: nextUpdate - thisUpdate
    ocsp_cache_size: int = 100_000   # pre-signed OCSP answers kept per worker (LRU)
    responder_days: int = 7      # the delegated OCSP responder certificate's validity
    tsa_days: int = 365          # the TSA certificate's validity (renewed 30 days before its end)
    tsa_policy: str = DEFAULT_TSA_POLICY
    tsa_accuracy_ms: int = 1000  # RFC 3161 accuracy stated in every time-stamp
    signing_window_minutes: int = 5      # a payment's signingTime must lie this close to our clock
    require_challenge: bool = False      # every payment must carry a bank challenge
    account_binding: bool = True         # a payer account must be one of the signer's customer's
    limit_timezone: str = "Asia/Shanghai"    # the calendar day of the daily limits (ca.limits)
    pin_tries: int = 3                   # wrong PINs in a row before a client token is locked (0: off)
    # Above these amounts (currency -> hundredths) a payment must carry the customer's OTP (ca.otp).
    otp_above: tuple[tuple[str, int], ...] = (("CNY", 5_000_000),)
    challenge_seconds: int = 300         # how long a challenge stays usable
    challenge_quota: int = 10_000        # open (unused, unexpired) challenges a bank may hold
    # Rate limits of `udun serve`, per worker process (webapi.ratelimit): "N/second|minute|hour" or "0".
    rate_limit_per_address: str = "1000/second"
    rate_limit_per_key: str = "500/second"
    operator_session_minutes: int = 15   # an operator's token login lasts this long
    renew_before_days: int = 30          # a certificate can be renewed in its last N days
    audit_checkpoint_minutes: int = 10   # how often a server signs a checkpoint of the audit log
    # The online token: the delegated OCSP responder and TSA keys, with a PIN of its own.
    # The bank-facing server (`udun serve`) holds this PIN and never the CA's.
    online_token: str = "udun-online"
    # Tokens are found by label, or by serial where one is set (a network HSM's partitions
    # may share a label); keys on them by the key id stored with the CA's records.
    # Logs (webapi.observability): one JSON object a line, to UDUN_LOG_FILE or stderr.
    log_file: str | None = None
    log_level: str = "INFO"
    ca_token_serial: str | None = None
    root_token_serial: str | None = None
    online_token_serial: str | None = None
    # Trust anchors of the API (PEM); None: the CA chain in the database.
    trust_file: Path | None = None
    # TLS for `udun serve` / `serve-admin` (udun.server): server certificate and key (PEM),
    # and the CAs whose client certificates banks present (none | optional | required).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    tls_client_auth: TlsClientAuth = "none"
    # A gunicorn Python configuration file applied over udun's defaults (udun.server).
    gunicorn_config: Path | None = None
    # The udun.toml these settings were read from, if any.
    config_file: Path | None = None

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def softhsm_conf(self) -> Path:
        return self.home / "softhsm2.conf"

    @property
    def uses_softhsm(self) -> bool:
        return "softhsm" in Path(self.pkcs11_module).name

    @property
    def ca_pin_file(self) -> Path:
        """The CA tokens' PIN (root and issuing CA): operator commands and `serve-admin` only."""
        return self.home / "secrets" / "ca.pin"

    @property
    def online_pin_file(self) -> Path:
        """The online token's PIN (delegated OCSP and TSA keys): what `udun serve` reads."""
        return self.home / "secrets" / "online.pin"

    def otp_threshold(self, currency: str) -> int | None:
        """The amount (hundredths) above which a payment in ``currency`` needs an OTP."""
        return dict(self.otp_above).get(currency)

    @property
    def otp_key_file(self) -> Path:
        """The key the OTP secrets are encrypted under (ca.otp): every process that checks or
        enrolls OTPs, `udun serve` too (copy it to each node, as online.pin)."""
        return self.home / "secrets" / "otp.key"

    @property
    def crl_url(self) -> str:
        return f"{self.base_url}/crl/issuing-ca.crl"

    @property
    def root_crl_url(self) -> str:
        return f"{self.base_url}/crl/root-ca.crl"

    @property
    def ocsp_url(self) -> str:
        return f"{self.base_url}/ocsp"

    @property
    def ca_issuers_url(self) -> str:
        return f"{self.base_url}/ca/issuing-ca.crt"

    @property
    def tsa_url(self) -> str:
        return f"{self.base_url}/tsa"

    @property
    def root_issuers_url(self) -> str:
        return f"{self.base_url}/ca/root-ca.crt"


class _Source:
    """The environment over the configuration file; errors name where a value came from.

    An empty variable counts as unset (as it always has), so the file's value applies."""

    def __init__(self, env: Mapping[str, str], file: tomlfile.ConfigFile | None) -> None:
        self.env = env
        self.file = file

    def get(self, name: str) -> str | None:
        value = self.env.get(name)
        if value:
            return value
        if self.file is not None:
            return self.file.values.get(name) or None
        return None

    def where(self, name: str) -> str:
        """UDUN_X, or `x in /path/udun.toml` when the file gave the value."""
        if not self.env.get(name) and self.file is not None and self.file.values.get(name):
            return self.file.where(name)
        return name

    def path(self, name: str) -> Path | None:
        raw = self.get(name)
        return Path(raw).expanduser().absolute() if raw else None


def _int(src: _Source, name: str, default: int, low: int, high: int) -> int:
    raw = src.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise PkiError(ErrorKind.BAD_INPUT, f"{src.where(name)} must be a whole number from {low} to {high}")
    return value


_RATE = re.compile(r"0|off|[1-9]\d{0,8}/(?:second|minute|hour)")


def _rate(src: _Source, name: str, default: str) -> str:
    """A rate limit as webapi.ratelimit.Rate reads it: ``100/second``, ``6000/minute``, ``0``."""
    raw = (src.get(name) or default).strip().lower().replace(" ", "")
    if not _RATE.fullmatch(raw):
        raise PkiError(ErrorKind.BAD_INPUT, f"{src.where(name)} is a rate such as 100/second, 6000/minute or 0 "
                                            "(no limit)")
    return raw


def _oid(src: _Source) -> str:
    """A dotted object identifier (X.660): first arc 0-2, then numbers."""
    raw = src.get("UDUN_TSA_POLICY") or DEFAULT_TSA_POLICY
    where = src.where("UDUN_TSA_POLICY")
    parts = raw.strip().split(".")
    if len(parts) < 2 or not all(p.isdigit() and p.isascii() for p in parts) or parts[0] not in ("0", "1", "2"):
        raise PkiError(ErrorKind.BAD_INPUT, f"{where} must be a dotted OID such as 1.3.6.1.4.1.99999.1")
    if raw.strip() == RECORDS_POLICY:
        raise PkiError(ErrorKind.BAD_INPUT, f"{where} cannot be udun's records policy")
    return raw.strip()


def _flag(src: _Source, name: str, default: bool = False) -> bool:
    raw = (src.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise PkiError(ErrorKind.BAD_INPUT, f"{src.where(name)} must be true or false")


def _amounts(src: _Source, name: str, default: str) -> tuple[tuple[str, int], ...]:
    """Amounts per currency, "CNY 50000.00, USD 7000" (hundredths); "none": no amounts."""
    import re

    raw = src.get(name)
    text = (default if raw is None else raw).strip()
    if text.lower() in ("", "none", "off"):
        return ()
    out: dict[str, int] = {}
    for part in text.split(","):
        m = re.fullmatch(r"\s*([A-Z]{3})\s+(0|[1-9][0-9]{0,14})(?:\.([0-9]{1,2}))?\s*", part)
        from pkicore.tx import valid_currency

        if m is None or m.group(1) in out or not valid_currency(m.group(1)):
            # A typo must not switch step-up off for the currency it meant (RMB for CNY).
            raise PkiError(ErrorKind.BAD_INPUT, f"{src.where(name)} must be amounts per ISO 4217 currency such as "
                                                "\"CNY 50000.00, USD 7000\" (or none)")
        out[m.group(1)] = int(m.group(2)) * 100 + int((m.group(3) or "0").ljust(2, "0"))
    return tuple(out.items())


def _zone(src: _Source, name: str, default: str) -> str:
    """An IANA time zone name (Asia/Shanghai), checked against the system's zone data."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    raw = (src.get(name) or "").strip() or default
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise PkiError(ErrorKind.BAD_INPUT, f"{src.where(name)} must be an IANA time zone such as Asia/Shanghai") \
            from None
    return raw


def _base_url(src: _Source) -> str:
    """The URL written into certificates (RFC 5280 §4.2.1.13, §4.2.2.1): http(s), a host."""
    url = (src.get("UDUN_BASE_URL") or "http://127.0.0.1:8080").rstrip("/")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:           # e.g. an unclosed IPv6 bracket
        host = None
    if not host or parts.scheme not in ("http", "https") or parts.query or parts.fragment \
            or any(ch.isspace() or not ch.isprintable() for ch in url) or not url.isascii():
        raise PkiError(ErrorKind.BAD_INPUT, f"{src.where('UDUN_BASE_URL')} must be an http:// or https:// URL "
                                            "such as http://pki.example.com")
    return url


def _log_level(src: _Source) -> str:
    level = (src.get("UDUN_LOG_LEVEL") or "INFO").strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise PkiError(ErrorKind.BAD_INPUT, f"{src.where('UDUN_LOG_LEVEL')} must be DEBUG, INFO, WARNING or ERROR")
    return level


def _tls_client_auth(src: _Source) -> TlsClientAuth:
    raw = (src.get("UDUN_TLS_CLIENT_AUTH") or "none").strip().lower()
    if raw not in ("none", "optional", "required"):
        raise PkiError(ErrorKind.BAD_INPUT, f"{src.where('UDUN_TLS_CLIENT_AUTH')} must be none, optional or required")
    return cast(TlsClientAuth, raw)


def _check_tls(src: _Source, cert: Path | None, key: Path | None, client_ca: Path | None,
               client_auth: TlsClientAuth) -> None:
    """The combinations that make sense; the files themselves are read at `serve` start."""
    if (cert is None) != (key is None):
        raise PkiError(ErrorKind.BAD_INPUT, f"{src.where('UDUN_TLS_CERT')} and {src.where('UDUN_TLS_KEY')} go "
                                            "together: set both (TLS) or neither (plain HTTP)")
    if client_auth != "none" and client_ca is None:
        raise PkiError(ErrorKind.BAD_INPUT, f"{src.where('UDUN_TLS_CLIENT_AUTH')}={client_auth} needs "
                                            "UDUN_TLS_CLIENT_CA: the CAs whose client certificates are accepted")
    # A CA file without client authentication would look like mutual TLS and check nobody.
    if client_ca is not None and client_auth == "none":
        raise PkiError(ErrorKind.BAD_INPUT, f"{src.where('UDUN_TLS_CLIENT_CA')} is set but UDUN_TLS_CLIENT_AUTH is "
                                            "none: set it to optional or required, or unset the CA file")
    if client_ca is not None and cert is None:
        raise PkiError(ErrorKind.BAD_INPUT, f"{src.where('UDUN_TLS_CLIENT_CA')} needs TLS: set UDUN_TLS_CERT "
                                            "and UDUN_TLS_KEY too")


def _config_file(e: Mapping[str, str]) -> tomlfile.ConfigFile | None:
    """UDUN_CONFIG if set (it must exist), else $UDUN_HOME/udun.toml if there is one.

    UDUN_HOME itself comes from the environment, or from the file UDUN_CONFIG names; the
    file inside UDUN_HOME cannot move UDUN_HOME."""
    named = e.get("UDUN_CONFIG")
    if named:
        path = Path(named).expanduser().absolute()
        try:
            path.lstat()
        except FileNotFoundError as ex:
            raise PkiError(ErrorKind.BAD_INPUT, f"UDUN_CONFIG names {path}, which does not exist") from ex
        except OSError:
            pass                  # tomlfile.read reports it, naming the file
        return tomlfile.read(path, home_allowed=True)
    path = _home(e.get("UDUN_HOME"), "UDUN_HOME") / CONFIG_FILE_NAME
    try:
        path.lstat()             # lstat: a dangling symlink is an error below, not "no file"
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        pass
    return tomlfile.read(path, home_allowed=False)


def _home(raw: str | None, where: str) -> Path:
    home = Path(raw or Path.home() / ".udun").expanduser().resolve()
    if home.exists() and not home.is_dir():
        raise PkiError(ErrorKind.BAD_INPUT, f"{where} {home} is not a directory")
    return home


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read UDUN_* variables over udun.toml; defaults give a working embedded set-up under ~/.udun."""
    e = dict(os.environ) if env is None else env
    file = _config_file(e)
    src = _Source(e, file)
    home = _home(src.get("UDUN_HOME"), src.where("UDUN_HOME"))
    tls_cert, tls_key, tls_client_ca = src.path("UDUN_TLS_CERT"), src.path("UDUN_TLS_KEY"), \
        src.path("UDUN_TLS_CLIENT_CA")
    tls_client_auth = _tls_client_auth(src)
    _check_tls(src, tls_cert, tls_key, tls_client_ca, tls_client_auth)
    return Settings(
        home=home,
        database_url=src.get("UDUN_DATABASE_URL") or f"sqlite:///{home / 'udun.db'}",
        pkcs11_module=src.get("UDUN_PKCS11_MODULE") or SOFTHSM_MODULE,
        base_url=_base_url(src),
        ca_token=src.get("UDUN_CA_TOKEN") or "udun-ca",
        root_token=src.get("UDUN_ROOT_TOKEN") or "udun-root",
        online_token=src.get("UDUN_ONLINE_TOKEN") or "udun-online",
        log_file=src.get("UDUN_LOG_FILE") or None,
        log_level=_log_level(src),
        ca_token_serial=src.get("UDUN_CA_TOKEN_SERIAL") or None,
        root_token_serial=src.get("UDUN_ROOT_TOKEN_SERIAL") or None,
        online_token_serial=src.get("UDUN_ONLINE_TOKEN_SERIAL") or None,
        client_days=_int(src, "UDUN_CLIENT_DAYS", 730, 1, 3650),
        crl_hours=_int(src, "UDUN_CRL_HOURS", 24, 1, 24 * 31),
        ocsp_minutes=_int(src, "UDUN_OCSP_MINUTES", 60, 1, 7 * 24 * 60),
        ocsp_cache_size=_int(src, "UDUN_OCSP_CACHE_SIZE", 100_000, 0, 10_000_000),
        responder_days=_int(src, "UDUN_OCSP_RESPONDER_DAYS", 7, 2, 90),
        tsa_days=_int(src, "UDUN_TSA_DAYS", 365, 31, 3650),
        tsa_policy=_oid(src),
        tsa_accuracy_ms=_int(src, "UDUN_TSA_ACCURACY_MS", 1000, 1, 60_000),
        signing_window_minutes=_int(src, "UDUN_SIGNING_WINDOW_MINUTES", 5, 1, 24 * 60),
        require_challenge=_flag(src, "UDUN_REQUIRE_CHALLENGE"),
        account_binding=_flag(src, "UDUN_ACCOUNT_BINDING", True),
        limit_timezone=_zone(src, "UDUN_LIMIT_TIMEZONE", "Asia/Shanghai"),
        pin_tries=_int(src, "UDUN_PIN_TRIES", 3, 0, 100),
        otp_above=_amounts(src, "UDUN_OTP_ABOVE", "CNY 50000.00"),
        challenge_seconds=_int(src, "UDUN_CHALLENGE_SECONDS", 300, 10, 24 * 3600),
        challenge_quota=_int(src, "UDUN_CHALLENGE_QUOTA", 10_000, 1, 10_000_000),
        rate_limit_per_address=_rate(src, "UDUN_RATE_LIMIT_PER_ADDRESS", "1000/second"),
        rate_limit_per_key=_rate(src, "UDUN_RATE_LIMIT_PER_KEY", "500/second"),
        operator_session_minutes=_int(src, "UDUN_OPERATOR_SESSION_MINUTES", 15, 1, 12 * 60),
        renew_before_days=_int(src, "UDUN_RENEW_BEFORE_DAYS", 30, 1, 3650),
        audit_checkpoint_minutes=_int(src, "UDUN_AUDIT_CHECKPOINT_MINUTES", 10, 1, 24 * 60),
        trust_file=src.path("UDUN_TRUST_FILE"),
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        tls_client_auth=tls_client_auth,
        gunicorn_config=src.path("UDUN_GUNICORN_CONFIG"),
        config_file=file.path if file is not None else None,
    )
