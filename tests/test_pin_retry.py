"""Issue 13 point 4: the PIN retry limit on a SoftHSM token (which never locks by itself):
udun's count on the token, UDUN_PIN_TRIES (3) wrong PINs lock it, `udun token unblock` (the
SO PIN, C_InitPIN) restores it with a new PIN."""
from __future__ import annotations

import json
import uuid
from typing import Any

from helpers import PIN, SO_PIN, udun


def _token(settings: Any) -> str:
    from signer import tokens

    label = f"pin-{uuid.uuid4().hex[:6]}"
    tokens.init(settings, label, PIN, SO_PIN)
    return label


def _show(label: str, pin: str) -> Any:
    return udun("token", "show", "--label", label, env={"UDUN_PIN": pin})


def _status(label: str) -> dict[str, Any]:
    done = udun("token", "pin-status", "--label", label, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_three_wrong_pins_lock_the_token_and_unblock_restores_it(settings: Any) -> None:
    label = _token(settings)
    said = []
    for _ in range(3):
        wrong = _show(label, "not-the-pin")
        assert wrong.returncode == 2 and b"Traceback" not in wrong.stderr
        said.append(wrong.stderr.decode().strip())
    # (SoftHSM raises CKF_USER_PIN_COUNT_LOW after a wrong PIN, and never locks: udun may add
    # what the token's flags say, which this test does not pin.)
    assert said[0].startswith(f"udun: error [pin-incorrect]: logging in to token {label!r}: the PIN is incorrect; "
                              "2 of 3 tries left")
    assert "; 1 of 3 tries left" in said[1]
    assert said[2] == (f"udun: error [pin-locked]: logging in to token {label!r}: the PIN is incorrect; "
                       "locked after 3 wrong PINs (udun token unblock, with the SO PIN)")
    right = _show(label, PIN)                                    # the right PIN: refused as well now
    assert right.returncode == 2 and b"[pin-locked]" in right.stderr
    assert _status(label)["locked"] is True and _status(label)["failures"] == 3

    bad_so = udun("token", "unblock", "--label", label, env={"UDUN_SO_PIN": "wrong-so-pin", "UDUN_NEW_PIN": "new-pin-1"})
    assert bad_so.returncode == 2 and b"SO PIN is incorrect" in bad_so.stderr
    assert _status(label)["locked"] is True
    done = udun("token", "unblock", "--label", label, env={"UDUN_SO_PIN": SO_PIN, "UDUN_NEW_PIN": "new-pin-1"})
    assert done.returncode == 0, done.stderr
    status = _status(label)
    assert (status["failures"], status["locked"], status["state"]) == (0, False, "3 of 3 tries left")
    assert _show(label, "new-pin-1").returncode == 0
    old = _show(label, PIN)                                      # the old PIN is gone
    assert old.returncode == 2 and "; 2 of 3 tries left" in old.stderr.decode()


def test_a_right_pin_ends_the_run_of_wrong_ones(settings: Any) -> None:
    label = _token(settings)
    for _ in range(2):
        assert _show(label, "not-the-pin").returncode == 2
    assert _status(label)["failures"] == 2
    assert _show(label, PIN).returncode == 0
    assert _status(label)["failures"] == 0
    assert "; 2 of 3 tries left" in _show(label, "not-the-pin").stderr.decode()


def test_the_limit_is_a_setting(settings: Any) -> None:
    label = _token(settings)
    wrong = udun("token", "show", "--label", label, env={"UDUN_PIN": "not-the-pin", "UDUN_PIN_TRIES": "5"})
    assert "; 4 of 5 tries left" in wrong.stderr.decode()
    off = udun("token", "show", "--label", label, env={"UDUN_PIN": "not-the-pin", "UDUN_PIN_TRIES": "0"})
    assert off.stderr.decode().strip().endswith("the PIN is incorrect")     # no count at all


def test_guesses_from_processes_at_once_get_no_extra_tries(settings: Any) -> None:
    """Six `udun token show` with a wrong PIN at the same moment: three are tried (the
    third locks), three are refused before any login."""
    import os
    import subprocess
    import sys

    from helpers import home_env

    label = _token(settings)
    env = home_env({**os.environ, "UDUN_PIN": "not-the-pin"})
    procs = [subprocess.Popen([sys.executable, "-m", "udun.cli", "token", "show", "--label", label], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(6)]
    codes = sorted(p.communicate(timeout=120)[1].decode().split("]")[0].split("[")[-1] for p in procs)
    assert codes == ["pin-incorrect"] * 2 + ["pin-locked"] * 4, codes
    assert _status(label)["failures"] == 3


def test_the_so_pin_has_its_tries_too(settings: Any) -> None:
    """SoftHSM never locks the SO PIN either: unblock counts its wrong SO PINs, and after
    three refuses even the right one (the token must be initialised again)."""
    label = _token(settings)
    said = [udun("token", "unblock", "--label", label, env={"UDUN_SO_PIN": "wrong-so-pin", "UDUN_NEW_PIN": "new-pin-2"})
            .stderr.decode().strip() for _ in range(3)]
    assert said[0].endswith("the SO PIN is incorrect (CK_RV 0xa0); 2 of 3 tries left"), said[0]
    assert "[pin-locked]" in said[2]
    right = udun("token", "unblock", "--label", label, env={"UDUN_SO_PIN": SO_PIN, "UDUN_NEW_PIN": "new-pin-2"})
    assert right.returncode == 2 and b"[pin-locked]" in right.stderr and b"initialise the token again" in right.stderr
    assert _show(label, PIN).returncode == 0                          # the user PIN is untouched
