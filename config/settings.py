"""Configuration from the environment (the only place os.environ is read for settings)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pkicore.errors import ErrorKind, PkiError
from pkicore.oids import DEFAULT_TSA_POLICY, RECORDS_POLICY

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


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
    challenge_seconds: int = 300         # how long a challenge stays usable
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


def _int(env: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise PkiError(ErrorKind.BAD_INPUT, f"{name} must be a whole number from {low} to {high}")
    return value


def _oid(raw: str) -> str:
    """A dotted object identifier (X.660): first arc 0-2, then numbers."""
    parts = raw.strip().split(".")
    if len(parts) < 2 or not all(p.isdigit() and p.isascii() for p in parts) or parts[0] not in ("0", "1", "2"):
        raise PkiError(ErrorKind.BAD_INPUT, "UDUN_TSA_POLICY must be a dotted OID such as 1.3.6.1.4.1.99999.1")
    if raw.strip() == RECORDS_POLICY:
        raise PkiError(ErrorKind.BAD_INPUT, "UDUN_TSA_POLICY cannot be udun's records policy")
    return raw.strip()


def _flag(env: dict[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise PkiError(ErrorKind.BAD_INPUT, f"{name} must be true or false")


def _base_url(raw: str) -> str:
    """The URL written into certificates (RFC 5280 §4.2.1.13, §4.2.2.1): http(s), a host."""
    url = raw.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment \
            or any(ch.isspace() or not ch.isprintable() for ch in url) or not url.isascii():
        raise PkiError(ErrorKind.BAD_INPUT, "UDUN_BASE_URL must be an http:// or https:// URL such as "
                                            "http://pki.example.com")
    return url


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise PkiError(ErrorKind.BAD_INPUT, "UDUN_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
    return level


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read UDUN_* variables; defaults give a working embedded set-up under ~/.udun."""
    e = dict(os.environ) if env is None else env
    home = Path(e.get("UDUN_HOME") or Path.home() / ".udun").expanduser().resolve()
    if home.exists() and not home.is_dir():
        raise PkiError(ErrorKind.BAD_INPUT, f"UDUN_HOME {home} is not a directory")
    return Settings(
        home=home,
        database_url=e.get("UDUN_DATABASE_URL") or f"sqlite:///{home / 'udun.db'}",
        pkcs11_module=e.get("UDUN_PKCS11_MODULE") or SOFTHSM_MODULE,
        base_url=_base_url(e.get("UDUN_BASE_URL") or "http://127.0.0.1:8080"),
        ca_token=e.get("UDUN_CA_TOKEN") or "udun-ca",
        root_token=e.get("UDUN_ROOT_TOKEN") or "udun-root",
        online_token=e.get("UDUN_ONLINE_TOKEN") or "udun-online",
        log_file=e.get("UDUN_LOG_FILE") or None,
        log_level=_log_level(e.get("UDUN_LOG_LEVEL") or "INFO"),
        ca_token_serial=e.get("UDUN_CA_TOKEN_SERIAL") or None,
        root_token_serial=e.get("UDUN_ROOT_TOKEN_SERIAL") or None,
        online_token_serial=e.get("UDUN_ONLINE_TOKEN_SERIAL") or None,
        client_days=_int(e, "UDUN_CLIENT_DAYS", 730, 1, 3650),
        crl_hours=_int(e, "UDUN_CRL_HOURS", 24, 1, 24 * 31),
        ocsp_minutes=_int(e, "UDUN_OCSP_MINUTES", 60, 1, 7 * 24 * 60),
        ocsp_cache_size=_int(e, "UDUN_OCSP_CACHE_SIZE", 100_000, 0, 10_000_000),
        responder_days=_int(e, "UDUN_OCSP_RESPONDER_DAYS", 7, 2, 90),
        tsa_days=_int(e, "UDUN_TSA_DAYS", 365, 31, 3650),
        tsa_policy=_oid(e.get("UDUN_TSA_POLICY") or DEFAULT_TSA_POLICY),
        tsa_accuracy_ms=_int(e, "UDUN_TSA_ACCURACY_MS", 1000, 1, 60_000),
        signing_window_minutes=_int(e, "UDUN_SIGNING_WINDOW_MINUTES", 5, 1, 24 * 60),
        require_challenge=_flag(e, "UDUN_REQUIRE_CHALLENGE"),
        challenge_seconds=_int(e, "UDUN_CHALLENGE_SECONDS", 300, 10, 24 * 3600),
        audit_checkpoint_minutes=_int(e, "UDUN_AUDIT_CHECKPOINT_MINUTES", 10, 1, 24 * 60),
    )
