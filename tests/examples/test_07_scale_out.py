"""Example 07 runs: three servers behind nginx, one SIGKILLed mid-siege; the survivors carry on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .._nginx import ensure_nginx

EXAMPLE = Path(__file__).parents[2] / "examples" / "07_scale_out"


def test_the_example_kills_a_backend_and_the_siege_carries_on() -> None:
    ensure_nginx()
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "scale_out.py"), "--rate", "120", "--seconds", "4"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert "calls answered per backend" in done.stdout and "(killed)" in done.stdout
    assert "[siege]" in done.stdout and " ok in " in done.stdout
    counts = summary["per_backend"]
    assert len(counts) == 3 and all(count > 0 for count in counts.values()), counts
    assert summary["failed_after_kill"] == 0
    # Only what the killed backend had in flight may fail.
    assert summary["ok"] >= summary["calls"] - 10 and summary["calls"] >= 400
    survivors = [count for address, count in counts.items() if address != summary["killed"]]
    assert min(survivors) > counts[summary["killed"]]
