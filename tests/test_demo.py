"""Acceptance 6: `udun demo` tells the whole story and exits 0 (README's demo command)."""
from __future__ import annotations

from helpers import udun


def test_demo_runs_the_story() -> None:
    proc = udun("demo", timeout=300)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()
    steps = ["Creating the CA", "Initialising the customer's token", "Generating an ECDSA P-256 key pair",
             "certificate request", "issues the certificate", "onto the token", "shown to the customer",
             "Starting the bank-facing API", "POSTs the signed payment", "TOTAL_PASSED", "evidence ev_",
             "time-stamped", "same signed payment again", "TOTAL_FAILED REPLAYED", "changes one byte",
             "TOTAL_FAILED HASH_FAILURE", "evidence bundle", "signature valid at", ".zip: OK", "Stopping the server",
             "DEMO OK"]
    positions = [out.find(s) for s in steps]
    assert all(p >= 0 for p in positions), [s for s, p in zip(steps, positions) if p < 0]
    assert positions == sorted(positions)
