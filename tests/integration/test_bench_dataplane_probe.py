"""bench/_dataplane_probe.py runs end to end (few requests) and ends with its JSON summary: the
real ModelInfer handler answered every request it awaited (a failing one would raise)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

PROBE = pathlib.Path(__file__).parents[2] / "bench" / "_dataplane_probe.py"


def test_dataplane_probe_smoke() -> None:
    done = subprocess.run(
        [sys.executable, str(PROBE), "--requests", "200"],
        capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert set(summary) == {"asyncinfer", "bare", "ratio"}
    assert len(summary["asyncinfer"]["rounds_us"]) == 5 and summary["asyncinfer"]["median_us"] > 0
    assert summary["ratio"] > 0
