"""`udun bank ...` (issue 12, point 1): a bank and its keys through the real command line,
against the session's database; the key is on stdout once (or in a new 0600 file), and
the key it prints works against the bank-facing API."""
from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

from helpers import udun


def _ok(*args: str) -> str:
    proc = udun(*args)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout.decode()


def test_a_bank_and_its_keys_through_the_cli(app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name = f"cli-{uuid.uuid4().hex[:8]}"
    _ok("bank", "add", name, "--display-name", "中国示范银行")
    dup = udun("bank", "add", name)
    assert dup.returncode == 2 and f"error [conflict]: a bank named '{name}' exists already" in dup.stderr.decode()
    listed = [json.loads(line) for line in _ok("bank", "list", "--json").splitlines()]
    assert {"name": name, "display_name": "中国示范银行", "state": "enabled"}.items() <= \
        next(b for b in listed if b["name"] == name).items()

    proc = udun("bank", "key", "add", name, "--scope", "challenges", "--days", "30")
    assert proc.returncode == 0, proc.stderr
    key = proc.stdout.decode().strip()
    assert key.startswith("udun_") and key not in proc.stderr.decode()
    client = app.test_client()
    assert client.post("/api/v1/challenges", headers={"Authorization": f"Bearer {key}"}).status_code == 201

    out = tmp_path / "bank.key"
    quiet = udun("bank", "key", "add", name, "-o", str(out))
    assert quiet.returncode == 0 and quiet.stdout == b"" and stat.S_IMODE(out.stat().st_mode) == 0o600
    second = out.read_text().strip()
    assert second not in quiet.stderr.decode()
    again = udun("bank", "key", "add", name, "-o", str(out))           # never over an existing file
    assert again.returncode == 2 and out.read_text().strip() == second

    keys = [json.loads(line) for line in _ok("bank", "key", "list", name, "--json").splitlines()]
    assert [k["scopes"] for k in keys] == [["challenges"], ["verify", "challenges", "evidence:read"]]
    first_id = keys[0]["key_id"]
    assert key.split("_")[1] == first_id and not any(key in json.dumps(k) for k in keys)

    rotated = udun("bank", "key", "rotate", first_id, "--grace-hours", "0")
    assert rotated.returncode == 0, rotated.stderr
    new_key = rotated.stdout.decode().strip()
    assert client.post("/api/v1/challenges", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert client.post("/api/v1/challenges", headers={"Authorization": f"Bearer {new_key}"}).status_code == 201
    _ok("bank", "key", "revoke", new_key.split("_")[1])
    assert client.post("/api/v1/challenges", headers={"Authorization": f"Bearer {new_key}"}).status_code == 401
    twice = udun("bank", "key", "revoke", new_key.split("_")[1])
    assert twice.returncode == 2 and "error [conflict]" in twice.stderr.decode()

    _ok("bank", "disable", name)
    shown = json.loads(_ok("bank", "show", name, "--json"))
    assert shown["state"] == "disabled" and {k["state"] for k in shown["keys"]} == {"revoked", "bank-disabled"}
    _ok("bank", "enable", name)
    text = _ok("bank", "show", name)
    assert text.startswith(f"{name}: 中国示范银行 (enabled)") and "revoked" in text and "active" in text


def test_bank_cli_errors_are_one_line_with_their_code() -> None:
    for args, code in ((("bank", "add", "Not A Name"), "bad-input"), (("bank", "show", "no-such-bank"), "not-found"),
                       (("bank", "key", "add", "no-such-bank"), "not-found"),
                       (("bank", "key", "revoke", "0000000000000000"), "not-found")):
        proc = udun(*args)
        lines = proc.stderr.decode().strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and f"error [{code}]" in lines[0], (args, proc.stderr)
    bad_scope = udun("bank", "key", "add", "testbank", "--scope", "root")
    assert bad_scope.returncode == 2 and b"Invalid value for '--scope'" in bad_scope.stderr
    helped = udun("bank", "key", "add", "--help")
    assert helped.returncode == 0 and b"evidence:read" in helped.stdout


def test_a_key_that_cannot_be_handed_out_is_revoked(tmp_path: Path) -> None:
    """stdout is a full disk: the key was made, nobody got its text, so it is revoked."""
    import os
    import subprocess
    import sys

    from helpers import home_env

    name = f"full-{uuid.uuid4().hex[:8]}"
    _ok("bank", "add", name)
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([sys.executable, "-m", "udun.cli", "bank", "key", "add", name], stdout=full,
                              stderr=subprocess.PIPE, env=home_env(dict(os.environ)), timeout=60, check=False)
    assert proc.returncode == 2 and b"it was revoked" in proc.stderr, proc.stderr
    keys = [json.loads(line) for line in _ok("bank", "key", "list", name, "--json").splitlines()]
    assert [k["state"] for k in keys] == ["revoked"]


def test_evidence_list_filters_by_bank(app, settings, enrolled) -> None:  # type: ignore[no-untyped-def]
    from helpers import PIN, sample_tx
    from signer.signing import sign_transaction

    name = f"list-{uuid.uuid4().hex[:8]}"
    _ok("bank", "add", name)
    key = _ok("bank", "key", "add", name).strip()
    client = app.test_client()
    ids = []
    for _ in range(3):
        cms = sign_transaction(settings, "user-ec", PIN, sample_tx())
        answer = client.post("/api/v1/verify", data=cms, content_type="application/pkcs7-mime",
                             headers={"Authorization": f"Bearer {key}"}).get_json()
        ids.append(answer["evidence_id"])
    proc = udun("evidence", "list", "--bank", name, "--limit", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    listed = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [r["evidence_id"] for r in listed] == ids[::-1][:2] and {r["bank"] for r in listed} == {name}
    cursor = proc.stderr.decode().split("--cursor ")[1].split()[0]
    last = udun("evidence", "list", "--bank", name, "--cursor", cursor)
    assert last.returncode == 0 and last.stdout.decode().split()[0] == ids[0] and b"--cursor" not in last.stderr
    bad = udun("evidence", "list", "--received-after", "tomorrow")
    assert bad.returncode == 2 and b"error [bad-input]: received_after must be a date" in bad.stderr
