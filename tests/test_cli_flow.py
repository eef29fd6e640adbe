"""Acceptance 1 (and 4's PIN rule): the CLI flow as written in the issue, in a subprocess
with its own UDUN_HOME and real SoftHSM tokens."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers import SAMPLE, home_env, lint, openssl, udun

CLI_PIN = "cli-pin-938271"
CLI_SO_PIN = "cli-so-pin-55123"
CA_PIN = "ca-pin-77119"


class Flow:
    """Runs udun in one home and remembers every output for the PIN check."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {"UDUN_HOME": str(home), "UDUN_PIN": CLI_PIN, "UDUN_SO_PIN": CLI_SO_PIN,
                    "UDUN_CA_PIN": CA_PIN, "UDUN_BASE_URL": "http://127.0.0.1:8080"}
        self.outputs: list[bytes] = []

    def run(self, *args: str, input: bytes | None = None, ok: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        proc = udun(*args, env={**self.env, **(env or {})}, input=input, cwd=self.home)
        self.outputs += [proc.stdout, proc.stderr]
        if ok:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Flow:
    return Flow(tmp_path_factory.mktemp("cli-home"))


def test_full_cli_flow(flow: Flow) -> None:
    h = flow.home
    flow.run("ca", "init", "--key-type", "rsa-3072")
    assert flow.run("ca", "init", ok=False).returncode == 2          # only once

    flow.run("token", "init", "--label", "alice")
    assert b"alice" in flow.run("token", "list").stdout
    flow.run("token", "keygen", "--label", "alice", "--key-type", "ec-p256")
    flow.run("token", "csr", "--label", "alice", "--subject", "CN=张三,O=Example Bank,C=CN", "-o", "req.pem")
    assert (h / "req.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE REQUEST-----")

    flow.run("customer", "add", "C0001", "--name", "张三", "--account", SAMPLE["payer"]["account"])
    issued = flow.run("ca", "issue", "req.pem", "--profile", "client", "-o", "cert.pem", "--chain",
                      "--customer", "C0001")
    assert b"bound to customer C0001" in issued.stderr
    serial = issued.stderr.decode().split("serial ")[1].split()[0]
    assert (h / "cert.pem").read_bytes().count(b"BEGIN CERTIFICATE") == 3
    assert serial.encode() in flow.run("ca", "list").stdout
    shown = flow.run("ca", "show", serial).stdout.decode()
    assert "issued" in shown and "张三" in shown
    flow.run("ca", "chain", "-o", "chain.pem")
    assert (h / "chain.pem").read_bytes().count(b"BEGIN CERTIFICATE") == 2

    flow.run("token", "import", "--label", "alice", "cert.pem")
    token_show = flow.run("token", "show", "--label", "alice").stdout.decode()
    assert "sensitive, never extractable" in token_show and serial in token_show
    token_serial = token_show.split("(serial ")[1].split(")")[0]
    assert token_show == flow.run("token", "show", "--serial", token_serial).stdout.decode()
    assert flow.run("token", "show", ok=False).returncode == 2                  # neither --label nor --serial
    shown = json.loads(flow.run("token", "show", "--label", "alice", "--json").stdout)
    assert shown["label"] == "alice" and shown["serial"] == token_serial
    assert [(k["type"], k["sensitive"], k["extractable"]) for k in shown["keys"]] == [("ec-p256", True, False)]
    assert serial in [c["serial"] for c in shown["certificates"]]
    listed = [json.loads(line) for line in flow.run("token", "list", "--json").stdout.decode().splitlines()]
    assert {"label": "alice", "serial": token_serial} in [{k: t[k] for k in ("label", "serial")} for t in listed]

    (h / "tx.json").write_text(json.dumps(SAMPLE, ensure_ascii=False, indent=2), encoding="utf-8")
    signed = flow.run("sign", "--label", "alice", "tx.json", "-o", "tx.p7s", input=b"y\n")
    shown_to_user = signed.stderr.decode()
    for words in ("1,234.50 CNY", "人民币壹仟贰佰叁拾肆元伍角", "李四", "中国农业银行", "6228 4800 1234 5678 901",
                  "房租"):
        assert words in shown_to_user              # the payee's whole account, grouped (issue 13)
    flow.run("sign", "--label", "alice", "tx.json", "-o", "txd.p7s", "--detached", "--content-out",
             "tx.canonical.json", "--yes")

    assert flow.run("verify", "tx.p7s").stdout.startswith(b"TOTAL_PASSED")
    flow.run("ca", "crl", "-o", "issuing.crl")
    flow.run("ca", "crl", "--ca", "root", "-o", "root.crl")      # the issuing CA's own status
    detached = json.loads(flow.run("verify", "txd.p7s", "--content", "tx.canonical.json", "--trust", "chain.pem",
                                   "--crl", "issuing.crl", "--crl", "root.crl", "--json").stdout)
    assert detached["status"] == "TOTAL_PASSED" and detached["revocation"]["source"] == "CRL"
    assert [s["status"] for s in detached["statuses"]] == ["good", "good"]
    declined = flow.run("sign", "--label", "alice", "tx.json", "-o", "no.p7s", input=b"n\n", ok=False)
    assert declined.returncode == 1 and not (h / "no.p7s").exists()

    # The RSA-3072 CA's own certificates are RFC 5280 clean and openssl-strict too.
    def first_pem(name: str) -> bytes:
        return (h / name).read_bytes().split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"

    (h / "issuing.pem").write_bytes(first_pem("chain.pem"))
    (h / "leaf.pem").write_bytes(first_pem("cert.pem"))
    (h / "root.pem").write_bytes((h / "chain.pem").read_bytes()[len(first_pem("chain.pem")):])
    for name in ("root.pem", "issuing.pem", "leaf.pem"):
        proc = lint(h / name)
        assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout
    check = openssl("verify", "-x509_strict", "-CAfile", str(h / "chain.pem"), str(h / "leaf.pem"))
    assert check.returncode == 0, check.stdout + check.stderr


def test_errors_are_one_clear_line(flow: Flow) -> None:
    h = flow.home
    wrong = flow.run("token", "show", "--label", "alice", env={"UDUN_PIN": "wrong-pin-31337"}, ok=False)
    assert wrong.returncode == 2 and b"pin-incorrect" in wrong.stderr
    assert b"wrong-pin-31337" not in wrong.stdout + wrong.stderr

    (h / "junk.pem").write_bytes(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
    junk = flow.run("ca", "issue", "junk.pem", ok=False)
    assert junk.returncode == 2 and b"bad-csr" in junk.stderr

    bad_tx = dict(SAMPLE, amount=1234.5)
    (h / "bad.json").write_text(json.dumps(bad_tx))
    bad = flow.run("sign", "--label", "alice", "bad.json", "--yes", ok=False)
    assert bad.returncode == 2 and b"bad-transaction" in bad.stderr
    assert flow.run("verify", "missing.p7s", ok=False).returncode == 2
    assert flow.run("token", "show", "--label", "nobody", ok=False).returncode == 2
    assert flow.run("ca", "show", "abcdef", ok=False).returncode == 2
    (h / "notacert.pem").write_bytes((h / "req.pem").read_bytes())
    for args in (("verify", "tx.p7s", "--trust", "notacert.pem"), ("token", "import", "--label", "alice", "req.pem")):
        proc = flow.run(*args, ok=False)
        assert proc.returncode == 2 and b"bad-input" in proc.stderr, proc.stderr
    for env in ({"UDUN_BASE_URL": "not a url"}, {"UDUN_CLIENT_DAYS": "99999999999"},
                {"UDUN_DATABASE_URL": "sqlite:////nonexistent/dir/x.db"}):
        proc = flow.run("ca", "list", env=env, ok=False)
        assert proc.returncode == 2 and b"bad-input" in proc.stderr, (env, proc.stderr)
    serve = flow.run("serve", "--port", "1", env={"UDUN_TRUST_FILE": str(h / "missing.pem")}, ok=False)
    assert serve.returncode == 2 and b"UDUN_TRUST_FILE" in serve.stderr
    for proc_output in flow.outputs:
        assert b"Traceback" not in proc_output and b"internal error" not in proc_output


def test_pins_never_appear_in_output_or_files(flow: Flow) -> None:
    assert flow.outputs, "the flow ran first"
    for secret in (CLI_PIN, CLI_SO_PIN, CA_PIN):
        for out in flow.outputs:
            assert secret.encode() not in out
    for path in flow.home.rglob("*"):
        if path.is_file() and path.suffix in (".log", ".json", ".pem", ".conf"):
            assert CLI_PIN.encode() not in path.read_bytes()


def test_help_lists_every_command() -> None:
    top = udun("--help").stdout.decode()
    for cmd in ("ca", "token", "sign", "verify", "serve", "demo"):
        assert cmd in top
    assert "init" in udun("ca", "--help").stdout.decode()
    assert "--detached" in udun("sign", "--help").stdout.decode()


def test_parallel_first_commands_and_init_on_a_fresh_home(tmp_path: Path) -> None:
    """Eight first commands migrate one fresh database; three `ca init` make one CA."""
    env = {"UDUN_HOME": str(tmp_path), "UDUN_CA_PIN": CA_PIN, "UDUN_SO_PIN": CLI_SO_PIN}
    import os
    import sys

    def start(*args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "udun.cli", *args], env=home_env({**os.environ, **env}),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    lists = [start("ca", "list") for _ in range(8)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in lists]   # type: ignore[union-attr]
    assert all(rc == 0 for rc, _ in results), results
    inits = [start("ca", "init") for _ in range(3)]
    codes = sorted(p.wait(timeout=300) for p in inits)
    assert codes == [0, 2, 2]
    keys = udun("token", "show", "--label", "udun-ca", env={**env, "UDUN_PIN": CA_PIN})
    # the issuing CA key of the one init that won; nothing else
    assert keys.returncode == 0 and keys.stdout.count(b"  key  ") == 1, keys.stdout + keys.stderr
    online_pin = (tmp_path / "secrets" / "online.pin").read_text().strip()
    online = udun("token", "show", "--label", "udun-online", env={**env, "UDUN_PIN": online_pin})
    # the OCSP responder and the TSA keys, under the online token's own PIN
    assert online.returncode == 0 and online.stdout.count(b"  key  ") == 2, online.stdout + online.stderr
    assert online_pin != CA_PIN


def test_home_and_database_are_private() -> None:
    """Issue 10 (hardening): UDUN_HOME 0700 and udun.db 0600 (+ WAL): another local user
    (uid 65534) cannot read the payments or the audit log."""
    import os
    import shutil
    import stat
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="udun-modes-"))    # /tmp/X, 0755: any user may traverse it
    os.chmod(base, 0o755)
    control = base / "public.txt"
    control.write_text("readable")
    control.chmod(0o644)

    def as_other(path: Path) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", str(path)],
                              capture_output=True, timeout=30)

    assert as_other(control).returncode == 0            # the test can tell a closed file from a closed path
    home = base / "private-home"
    env = {"UDUN_HOME": str(home), "UDUN_CA_PIN": CA_PIN, "UDUN_SO_PIN": CLI_SO_PIN}
    assert udun("ca", "init", env=env).returncode == 0
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for name in ("udun.db", "udun.db-wal"):
        if (home / name).exists():
            assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
    # Every file udun (or SoftHSM under it) wrote: nothing readable by group or others.
    opened = [str(p) for p in home.rglob("*") if p.is_file() and stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert opened == [], opened
    os.chmod(home, 0o755)                    # even with the folder opened up, the file stays closed
    # (PostgreSQL keeps the database elsewhere: the online token PIN's file stands for it then)
    closed = home / "udun.db" if (home / "udun.db").exists() else home / "secrets" / "online.pin"
    other = as_other(closed)
    assert other.returncode != 0 and b"Permission denied" in other.stderr
    assert udun("ca", "list", env=env).returncode == 0
    assert stat.S_IMODE(home.stat().st_mode) == 0o700      # tightened again on the next start
    shutil.rmtree(base, ignore_errors=True)
