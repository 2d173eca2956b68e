"""bench/_codecs_probe.py runs end to end (few calls) and ends with its JSON summary: every case
was timed in every round against the real codecs server."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

PROBE = pathlib.Path(__file__).parents[2] / "bench" / "_codecs_probe.py"
CASES = {"protobuf", "flatbuffers", "raw", "raw+encode", "raw+decode", "raw+frombuffer"}


def test_codecs_probe_smoke() -> None:
    done = subprocess.run(
        [sys.executable, str(PROBE), "--calls", "20", "--rounds", "2", "--tuned-heap"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert set(summary) >= CASES and summary["tuned_heap"] is True
    for case in CASES:
        assert len(summary[case]["rounds_wall_us"]) == 2
        assert summary[case]["wall_us"] > 0 and summary[case]["cpu_us"] > 0
    assert set(summary["extra_vs_raw_us"]) == CASES - {"raw"}
