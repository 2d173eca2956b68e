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


def test_dataplane_probe_takes_models_and_a_copy_kept_in_threads() -> None:
    repository = PROBE.parent / "triton_models"
    done = subprocess.run(
        [sys.executable, str(PROBE), "--requests", "100", "--repository", str(repository),
         "--models", "triton_bls", "--in-threads", "triton_bls"],
        capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert set(summary) == {"triton_bls", "triton_bls_in_threads", "bare", "ratio"}
    assert summary["triton_bls_in_threads"]["median_us"] > 0
