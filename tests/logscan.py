"""The whole test run's log, scanned for what must never be logged (issue 11).

conftest points UDUN_LOG_FILE of the run (in-process apps and every `udun` subprocess
that inherits the environment) at one file; at the end of the run this module looks in
every line for the secrets the run used: the test PINs, every PIN file a home of the run
wrote (CA and online-token PINs are random per home), the admin API keys, any bank API key
(by its shape) and every payment
account number written in the tests and the demo, and private-key PEM. A hit fails the run.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

ROOT = Path(__file__).resolve().parent.parent
MIN_LEN = 8              # shorter literals ("1234", a masked tail) are not secrets by themselves

# String literals the tests and the demo use as account numbers and API keys.
_ACCOUNT = re.compile(r'"account"\s*:\s*"([^"]+)"')
_KEY = re.compile(r'(?:ADMIN_API_KEY"?\s*[:=]\s*|admin_api_key\s*=\s*|_KEY\s*=\s*)"([^"]+)"')
_SOURCES = ("tests/**/*.py", "udun/demo.py", "bench/*.py")
_ALWAYS = ("PRIVATE KEY-----",)
# A bank API key's text (ca.banks): random per run, so found by its shape; its id alone may be logged.
_BANK_KEY = re.compile(r"udun(?:op|sess)?_[0-9a-f]{16,32}_[A-Za-z0-9_-]{43}")     # bank keys, operator tokens


@dataclass(frozen=True)
class Leak:
    line_no: int
    what: str            # the kind of secret, never the secret itself


def run_secrets(pin_roots: Iterable[Path], fixed: dict[str, str]) -> dict[str, str]:
    """secret -> what it is: ``fixed`` plus the literals of the sources and the PIN files
    found under ``pin_roots``."""
    found = dict(fixed)
    for pattern in _SOURCES:
        for src in ROOT.glob(pattern):
            text = src.read_text(encoding="utf-8", errors="replace")
            for m in _ACCOUNT.finditer(text):
                found.setdefault(m.group(1), f"account number from {src.relative_to(ROOT)}")
            for m in _KEY.finditer(text):
                found.setdefault(m.group(1), f"API key from {src.relative_to(ROOT)}")
    for root in pin_roots:
        for pin_file in root.glob("**/secrets/*.pin"):
            try:
                found.setdefault(pin_file.read_text().strip(), f"PIN of {pin_file.name}")
            except OSError:
                continue                       # removed meanwhile: its home is gone
    for marker in _ALWAYS:
        found[marker] = "private key PEM"
    return {s: w for s, w in found.items() if len(s) >= MIN_LEN}


def scan(log: Path, secrets: dict[str, str]) -> tuple[int, list[Leak]]:
    """(lines read, leaks) of ``log``; a missing log is no lines."""
    if not log.exists():
        return 0, []
    leaks: list[Leak] = []
    n = 0
    with log.open(encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            for secret, what in secrets.items():
                if secret in line:
                    leaks.append(Leak(n, what))
            if _BANK_KEY.search(line):
                leaks.append(Leak(n, "bank API key"))
    return n, leaks
