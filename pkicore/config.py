"""Configuration from the environment (the only place os.environ is read for settings)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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

    @property
    def softhsm_conf(self) -> Path:
        return self.home / "softhsm2.conf"

    @property
    def uses_softhsm(self) -> bool:
        return "softhsm" in Path(self.pkcs11_module).name

    @property
    def ca_pin_file(self) -> Path:
        return self.home / "secrets" / "ca.pin"

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
    def root_issuers_url(self) -> str:
        return f"{self.base_url}/ca/root-ca.crt"


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        from pkicore.errors import ErrorKind, PkiError

        raise PkiError(ErrorKind.BAD_INPUT, f"{name} must be a whole number") from None
    return value


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read UDUN_* variables; defaults give a working embedded set-up under ~/.udun."""
    e = dict(os.environ) if env is None else env
    home = Path(e.get("UDUN_HOME") or Path.home() / ".udun").expanduser().resolve()
    return Settings(
        home=home,
        database_url=e.get("UDUN_DATABASE_URL") or f"sqlite:///{home / 'udun.db'}",
        pkcs11_module=e.get("UDUN_PKCS11_MODULE") or SOFTHSM_MODULE,
        base_url=(e.get("UDUN_BASE_URL") or "http://127.0.0.1:8080").rstrip("/"),
        ca_token=e.get("UDUN_CA_TOKEN") or "udun-ca",
        root_token=e.get("UDUN_ROOT_TOKEN") or "udun-root",
        client_days=_int(e, "UDUN_CLIENT_DAYS", 730),
    )
