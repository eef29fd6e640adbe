"""NIST PKITS v1.0.1 §4: all 249 path-validation cases through the real `udun cert verify`.

The case list (expected verdicts, files, initial policy settings) is
`../shared/conformance/pkits_cases.json` beside the repository (see its README.md); the
certificates and CRLs are those of the `cryptography-vectors` package (the `test` extra),
`x509/PKITS_data`, passed to the command as they are (DER).

Every case is one `udun cert verify ... --revocation hard --offline --purpose client-auth --json`
in a subprocess; a few run at a time. One test runs them all, prints the score once and, on
failure, lists every case that did not come out as PKITS expects.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import udun

CASES_FILE = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "pkits_cases.json"
DEFAULT_TIME = "2011-04-15T00:00:00Z"
ANY_POLICY = "2.5.29.32.0"
# The DSA cases: DSA is refused unless asked for. 4.1.4 and 4.1.5 must then be valid, and
# 4.1.6 (a bad DSA signature) invalid for its signature, not merely for being DSA.
WEAK_ALGORITHM_CASES = frozenset({"4.1.4", "4.1.5", "4.1.6"})
# ...and without --allow-weak-algorithms these must be refused for the algorithm.
STRICT_DSA_CASES = ("4.1.4", "4.1.5")
WEAK_MARKERS = ("weak", "crypto_constraints")
# The machine running the suite may have few cores; each run is mostly CPU (Python start).
WORKERS = max(2, min(4, os.cpu_count() or 2))
TIMEOUT = 120.0


@dataclass(frozen=True)
class Outcome:
    """What one run of `udun cert verify` said: verdict is valid, invalid or error."""
    verdict: str
    detail: str
    result: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _load_cases() -> dict[str, Any]:
    if not CASES_FILE.is_file():
        pytest.fail(f"PKITS case list not found: {CASES_FILE} (shared/conformance/ must sit beside the "
                    f"repository, as in CI)", pytrace=False)
    data: dict[str, Any] = json.loads(CASES_FILE.read_text(encoding="utf-8"))
    cases = data["cases"]
    counts = data.get("counts", {})
    assert len(cases) == counts.get("total") == 249, f"{CASES_FILE}: expected 249 cases, has {len(cases)}"
    assert len({c["id"] for c in cases}) == len(cases), f"{CASES_FILE}: duplicate case ids"
    default = sum(1 for c in cases if c["default_settings"])
    assert default == counts.get("default_settings") == 214, f"{CASES_FILE}: {default} default-settings cases"
    return data


def _data_root() -> Path:
    try:
        import cryptography_vectors
    except ImportError:
        pytest.fail("the PKITS certificates come from the cryptography-vectors package: "
                    "pip install -e '.[test]' (or pip install cryptography-vectors==50.0.2)", pytrace=False)
    root = Path(cryptography_vectors.__file__).resolve().parent / "x509" / "PKITS_data"
    if not (root / "certs").is_dir() or not (root / "crls").is_dir():
        pytest.fail(f"no PKITS data in {root}", pytrace=False)
    return root


def _argv(case: dict[str, Any], root: Path, at: str, *, allow_weak: bool) -> list[str]:
    settings = case["settings"]
    argv = ["cert", "verify", str(root / case["end_entity"]), "--trust", str(root / case["trust_anchor"])]
    for name in case["intermediates"]:
        argv += ["--untrusted", str(root / name)]
    for name in case["crls"]:
        argv += ["--crl", str(root / name)]
    argv += ["--at", at, "--revocation", "hard", "--offline", "--purpose", "client-auth"]
    if list(settings["initial_policy_set"]) != [ANY_POLICY]:
        for oid in settings["initial_policy_set"]:
            argv += ["--policy", oid]
    if settings["initial_explicit_policy"]:
        argv.append("--explicit-policy")
    if settings["initial_policy_mapping_inhibit"]:
        argv.append("--inhibit-policy-mapping")
    if settings["initial_inhibit_any_policy"]:
        argv.append("--inhibit-any-policy")
    if allow_weak:
        argv.append("--allow-weak-algorithms")
    return argv + ["--json"]


def _text(result: dict[str, Any]) -> str:
    """The reason a result gives: error, plus rule and sub_indication when present."""
    parts = [str(result.get("error"))]
    parts += [f"{key}={result[key]}" for key in ("rule", "sub_indication") if result.get(key)]
    failing = result.get("failing_certificate")
    if isinstance(failing, dict) and failing:
        parts.append(f"at {failing.get('subject') or failing}")
    return "; ".join(parts)


def _run(argv: Sequence[str], home: Path) -> Outcome:
    start = time.monotonic()
    try:
        proc = udun(*argv, env={"UDUN_HOME": str(home)}, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return Outcome("error", f"timed out after {TIMEOUT:.0f} s", seconds=time.monotonic() - start)
    seconds = time.monotonic() - start
    stderr = proc.stderr.decode(errors="replace").strip()
    if proc.returncode not in (0, 1):
        return Outcome("error", f"exit {proc.returncode}: {stderr[-600:] or proc.stdout[-600:]!r}",
                       seconds=seconds)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        return Outcome("error", f"exit {proc.returncode}, stdout is not JSON: {proc.stdout[:300]!r} "
                                f"{stderr[-300:]}", seconds=seconds)
    if not isinstance(result, dict) or result.get("valid") is not (proc.returncode == 0):
        valid = result.get("valid") if isinstance(result, dict) else result
        return Outcome("error", f"exit {proc.returncode} but JSON valid={valid!r}", seconds=seconds)
    return Outcome("valid" if proc.returncode == 0 else "invalid", _text(result), result, seconds)


def test_pkits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _load_cases()
    root = _data_root()
    at = data.get("validation_time") or DEFAULT_TIME
    cases: list[dict[str, Any]] = data["cases"]
    by_id = {c["id"]: c for c in cases}
    assert set(STRICT_DSA_CASES) | WEAK_ALGORITHM_CASES <= set(by_id)

    jobs: list[tuple[str, list[str]]] = [
        (c["id"], _argv(c, root, at, allow_weak=c["id"] in WEAK_ALGORITHM_CASES)) for c in cases]
    jobs += [(f"{cid}/strict", _argv(by_id[cid], root, at, allow_weak=False)) for cid in STRICT_DSA_CASES]
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        outcomes = dict(zip((key for key, _ in jobs), pool.map(lambda job: _run(job[1], tmp_path), jobs)))
    elapsed = time.monotonic() - start

    mismatches: list[str] = []
    false_accepts = 0
    passed = {True: 0, False: 0}
    for c in cases:
        got = outcomes[c["id"]]
        if got.verdict == c["expected"]:
            passed[c["default_settings"]] += 1
            continue
        if got.verdict == "valid":
            false_accepts += 1
        settings = "" if c["default_settings"] else f" settings={json.dumps(c['settings'], sort_keys=True)}"
        mismatches.append(f"{c['id']} {c['name']}: expected {c['expected']}, got {got.verdict}"
                          f"{' (FALSE ACCEPT)' if got.verdict == 'valid' else ''}: {got.detail}{settings}")
    strict_refused = 0
    for cid in STRICT_DSA_CASES:
        got = outcomes[f"{cid}/strict"]
        reason = " ".join(str(got.result.get(k) or "") for k in ("error", "sub_indication", "rule")).lower()
        if got.verdict == "invalid" and any(m in reason for m in WEAK_MARKERS):
            strict_refused += 1
        else:
            mismatches.append(f"{cid} {by_id[cid]['name']} without --allow-weak-algorithms: expected invalid "
                              f"for a weak algorithm (error/sub_indication naming weak or CRYPTO_CONSTRAINTS), "
                              f"got {got.verdict}: {got.detail}")

    n_default = sum(1 for c in cases if c["default_settings"])
    n_policy = len(cases) - n_default
    slowest = max(outcomes.values(), key=lambda o: o.seconds).seconds
    score = (f"PKITS: {passed[True] + passed[False]}/{len(cases)} passed ({passed[True]}/{n_default} default "
             f"settings, {passed[False]}/{n_policy} policy inputs), {false_accepts} false accepts; "
             f"DSA without --allow-weak-algorithms: {strict_refused}/{len(STRICT_DSA_CASES)} refused; "
             f"{len(jobs)} runs of `udun cert verify` in {elapsed:.1f} s ({WORKERS} at a time, "
             f"slowest {slowest:.1f} s)")
    with capsys.disabled():
        print(f"\n{score}")
    if mismatches:
        pytest.fail(f"{score}\n{len(mismatches)} mismatching:\n" + "\n".join(mismatches), pytrace=False)
