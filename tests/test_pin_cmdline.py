"""Issue 10: PINs never on any command line.

`udun ca init` and `udun token init` run in a subprocess with known PINs while a thread
reads every /proc/*/cmdline as fast as it can; no PIN may ever appear in one. The tokens
are then shown to work with those PINs (user PIN and SO PIN).
"""
from __future__ import annotations

import os
import pty
import secrets
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import home_env, udun


class CmdlineWatch:
    """Polls every process's command line until stopped and keeps every one it read, so
    secrets learnt only afterwards (PINs `ca init` generates) can be checked too."""

    def __init__(self) -> None:
        self.seen: dict[int, set[bytes]] = {}    # pid -> every command line it was seen with
        self.sweeps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "CmdlineWatch":
        self._thread.start()
        while self.sweeps == 0:                    # watching before the command starts
            time.sleep(0.001)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit() or int(entry.name) == me:
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                        line = f.read()
                except OSError:
                    continue                      # exited meanwhile, or not ours to read
                if line:                          # a fork is seen before and after its exec
                    self.seen.setdefault(int(entry.name), set()).add(line)
            self.sweeps += 1
            time.sleep(0.001)

    def leaks(self, secrets_: list[str]) -> list[tuple[int, bytes]]:
        return [(pid, line) for pid, lines in self.seen.items() for line in lines
                if any(s.encode() in line for s in secrets_)]

    def saw(self, pid: int, word: bytes) -> bool:
        return any(word in line for line in self.seen.get(pid, ()))


def _pins() -> tuple[str, str, str]:
    """Fresh PINs each run, so no other process on the machine can carry them by chance."""
    tag = secrets.token_hex(6)
    return f"ca-pin-{tag}", f"so-pin-{tag}", f"user-pin-{tag}"


def _watched(args: list[str], env: dict[str, str], cwd: Path) -> tuple[
        subprocess.CompletedProcess[bytes], CmdlineWatch, int]:
    with CmdlineWatch() as watch:
        proc = subprocess.Popen([sys.executable, "-m", "udun.cli", *args], env=env, cwd=cwd,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate(timeout=180)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), watch, proc.pid


def _env(home: Path, **pins: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.endswith("_PIN") and k != "SOFTHSM2_CONF"}
    return home_env({**env, "UDUN_HOME": str(home), "UDUN_BASE_URL": "http://127.0.0.1:8080", **pins})


def _pin_files(home: Path) -> list[str]:
    """PINs udun generated and keeps in files (e.g. a token's PIN made by `ca init`)."""
    secrets_dir = home / "secrets"
    return [p.read_text().strip() for p in secrets_dir.glob("*.pin")] if secrets_dir.is_dir() else []


def _assert_clean(watch: CmdlineWatch, pid: int, pins: list[str], outputs: list[bytes]) -> None:
    leaks = watch.leaks(pins)
    assert not leaks, f"a PIN was on a command line: {leaks[:3]}"
    assert watch.saw(pid, b"udun.cli"), "the poller never saw the udun process: the check proves nothing"
    assert watch.sweeps >= 10
    for pin in pins:
        assert all(pin.encode() not in o for o in outputs)


_SO_LOGIN = """
import os, pkcs11
lib = pkcs11.lib(os.environ["UDUN_TEST_MODULE"])
tok = lib.get_token(token_label=os.environ["UDUN_TEST_LABEL"])
with tok.open(so_pin=os.environ["UDUN_TEST_SO_PIN"], rw=True):    # SO sessions are read/write
    pass
with tok.open(user_pin=os.environ["UDUN_TEST_USER_PIN"]):
    pass
print("ok")
"""


def _logins_work(home: Path, label: str, user_pin: str, so_pin: str) -> None:
    """Both PINs open the token, in a fresh process (PINs by environment, never argv)."""
    from config.settings import load_settings

    module = load_settings().pkcs11_module
    env = {**os.environ, "SOFTHSM2_CONF": str(home / "softhsm2.conf"), "UDUN_TEST_MODULE": module,
           "UDUN_TEST_LABEL": label, "UDUN_TEST_SO_PIN": so_pin, "UDUN_TEST_USER_PIN": user_pin}
    proc = subprocess.run([sys.executable, "-c", _SO_LOGIN], env=env, capture_output=True, timeout=60,
                          check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == b"ok", proc.stderr
    wrong = {**env, "UDUN_TEST_SO_PIN": so_pin + "x"}
    proc = subprocess.run([sys.executable, "-c", _SO_LOGIN], env=wrong, capture_output=True, timeout=60,
                          check=False)
    assert proc.returncode != 0 and b"PinIncorrect" in proc.stderr


def test_the_watch_catches_a_secret_on_a_command_line(tmp_path: Path) -> None:
    """The poller is fast enough to see a short-lived process's arguments."""
    canary = f"canary-{secrets.token_hex(6)}"
    with CmdlineWatch() as watch:
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.2)", canary], check=True)
    assert watch.leaks([canary])


def test_ca_init_and_token_init_keep_pins_off_command_lines(tmp_path: Path) -> None:
    ca_pin, so_pin, user_pin = _pins()
    online_pin = "online-" + user_pin
    env = _env(tmp_path, UDUN_CA_PIN=ca_pin, UDUN_SO_PIN=so_pin, UDUN_ONLINE_PIN=online_pin)

    ca, watch, pid = _watched(["ca", "init"], env, tmp_path)
    pins = [ca_pin, so_pin, user_pin, online_pin, *_pin_files(tmp_path)]
    _assert_clean(watch, pid, pins, [ca.stdout, ca.stderr])
    assert ca.returncode == 0, ca.stderr

    env_user = {**env, "UDUN_PIN": user_pin}
    init, watch, pid = _watched(["token", "init", "--label", "alice"], env_user, tmp_path)
    _assert_clean(watch, pid, pins, [init.stdout, init.stderr])
    assert init.returncode == 0, init.stderr
    serial = init.stderr.decode().split("(serial ")[1].split(")")[0]

    # The tokens work with exactly these PINs.
    listed = udun("token", "list", env=env, cwd=tmp_path).stdout.decode()
    for label in ("udun-root", "udun-ca", "alice"):
        assert label in listed
    assert serial in listed
    keygen = udun("token", "keygen", "--label", "alice", env=env_user, cwd=tmp_path)
    assert keygen.returncode == 0, keygen.stderr
    bad = udun("token", "show", "--label", "alice", env={**env, "UDUN_PIN": user_pin + "x"}, cwd=tmp_path)
    assert bad.returncode == 2 and b"PIN is incorrect" in bad.stderr
    _logins_work(tmp_path, "udun-root", ca_pin, so_pin)
    _logins_work(tmp_path, "udun-ca", ca_pin, so_pin)
    _logins_work(tmp_path, "alice", user_pin, so_pin)
    if "udun-online" in listed:          # the online token (its own PIN), where ca init makes one
        _logins_work(tmp_path, "udun-online", online_pin, so_pin)


def test_token_init_with_pins_typed_at_prompts(tmp_path: Path) -> None:
    """PINs typed at the terminal prompts stay off command lines too."""
    _, so_pin, user_pin = _pins()
    env = _env(tmp_path)
    with CmdlineWatch() as watch:
        pid, fd = pty.fork()
        if pid == 0:    # the child: its controlling terminal is the pty
            os.execve(sys.executable, [sys.executable, "-m", "udun.cli", "token", "init", "--label", "bob"], env)
        screen, seen_upto = b"", 0
        answers = [(b"New PIN:", user_pin), (b"Repeat for confirmation:", user_pin),
                   (b"SO PIN:", so_pin), (b"Repeat for confirmation:", so_pin)]
        deadline = time.monotonic() + 120
        status = None
        while status is None and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    screen += os.read(fd, 4096)
                except OSError:
                    pass
            if answers and (at := screen.find(answers[0][0], seen_upto)) >= 0:
                prompt, answer = answers.pop(0)    # type only after the prompt (echo is off then)
                seen_upto = at + len(prompt)
                os.write(fd, answer.encode() + b"\r")
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(st)
        if status is None:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail(f"udun token init did not finish; screen: {screen!r}")
        os.close(fd)
    assert status == 0, screen
    assert b"token 'bob' initialised" in screen
    _assert_clean(watch, pid, [so_pin, user_pin], [screen])      # typed PINs are not echoed either
    _logins_work(tmp_path, "bob", user_pin, so_pin)
