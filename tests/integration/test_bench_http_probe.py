"""bench/_http_probe.py runs end to end (few requests) and ends with its JSON summary: the real
HTTP front end answered every request 200, with what the bare server answers (else it raises)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

PROBE = pathlib.Path(__file__).parents[2] / "bench" / "_http_probe.py"


def test_http_probe_smoke() -> None:
    done = subprocess.run(
        [sys.executable, str(PROBE), "--requests", "100"],
        capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert set(summary) == {"json", "binary"}
    for encoding in summary.values():
        assert set(encoding) == {"asyncinfer", "bare_app", "bare", "ratio", "ratio_app"}
        assert len(encoding["asyncinfer"]["rounds_us"]) == 5
        assert encoding["asyncinfer"]["median_us"] > 0 and encoding["ratio"] > 0
