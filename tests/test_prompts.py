"""The interactive side of `udun`: confirmation and PIN prompts on a real terminal (pty)."""
from __future__ import annotations

import json
import os
import pty
import select
import sys
import time
from pathlib import Path

import pytest

from helpers import PIN, SAMPLE, udun


class Terminal:
    """`udun` on a pseudo-terminal: what a person at the keyboard sees and types."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:   # the child: its controlling terminal is the pty
            os.execve(sys.executable, [sys.executable, "-m", "udun.cli", *args], env)
        self.screen = b""

    def expect(self, text: bytes, timeout: float = 60, times: int = 1) -> None:
        """Wait until ``text`` has appeared ``times`` times (type only after a prompt:
        what is typed ahead, while echo is still on, is echoed)."""
        deadline = time.monotonic() + timeout
        while self.screen.count(text) < times:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} never appeared; screen: {self.screen!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{text!r} never appeared; screen: {self.screen!r}")
                self.screen += chunk

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def finish(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                self.screen += chunk
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, 9)
        raise AssertionError(f"udun did not finish; screen: {self.screen!r}")


@pytest.fixture(scope="module")
def term_env(home: Path, enrolled) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k not in ("UDUN_PIN", "UDUN_SO_PIN")}
    env["UDUN_HOME"] = str(home)
    return env


def test_sign_asks_confirmation_then_pin_without_echo(term_env: dict[str, str], tmp_path: Path,
                                                      chain_pem: Path) -> None:
    tx = tmp_path / "tx.json"
    tx.write_text(json.dumps(SAMPLE, ensure_ascii=False), encoding="utf-8")
    term = Terminal(["sign", "--label", "user-ec", str(tx), "-o", str(tmp_path / "tx.p7s")], term_env)
    term.expect("1,234.50 CNY".encode())
    term.expect(b"Sign this payment? [y/N]")
    term.type("y\r")
    term.expect(b"PIN:")
    term.type(PIN + "\r")
    assert term.finish() == 0, term.screen
    assert PIN.encode() not in term.screen          # typed, never echoed
    assert b"signed:" in term.screen
    assert udun("verify", str(tmp_path / "tx.p7s"), env={"UDUN_HOME": term_env["UDUN_HOME"]}).returncode == 0


def test_declining_signs_nothing(term_env: dict[str, str], tmp_path: Path) -> None:
    tx = tmp_path / "tx.json"
    tx.write_text(json.dumps(SAMPLE, ensure_ascii=False), encoding="utf-8")
    term = Terminal(["sign", "--label", "user-ec", str(tx), "-o", str(tmp_path / "tx.p7s")], term_env)
    term.expect(b"Sign this payment? [y/N]")
    term.type("n\r")
    assert term.finish() == 1
    assert b"PIN:" not in term.screen and not (tmp_path / "tx.p7s").exists()


def test_token_init_asks_the_new_pin_twice(term_env: dict[str, str]) -> None:
    term = Terminal(["token", "init", "--label", "prompted"], term_env)
    term.expect(b"New PIN:")
    term.type("first-pin-1\r")
    term.expect(b"Repeat for confirmation:")
    term.type("other-pin-2\r")
    term.expect(b"do not match")
    term.expect(b"New PIN:", times=2)
    term.type("good-pin-3\r")
    term.expect(b"Repeat for confirmation:", times=2)
    term.type("good-pin-3\r")
    term.expect(b"SO PIN:")
    term.type("so-pin-4444\r")
    term.expect(b"Repeat for confirmation:", times=3)
    term.type("so-pin-4444\r")
    assert term.finish() == 0, term.screen
    for secret in (b"first-pin-1", b"good-pin-3", b"so-pin-4444"):
        assert secret not in term.screen
