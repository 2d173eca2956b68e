"""bench/shm.py runs end to end (tiny sizes, short windows) and ends with its JSON summary."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

BENCH = pathlib.Path(__file__).parents[2] / "bench" / "shm.py"


def test_bench_shm_smoke() -> None:
    done = subprocess.run(
        [
            sys.executable, str(BENCH), "--mib", "1", "--duration", "0.1", "--runs", "1",
            "--concurrency", "1", "--no-perf-analyzer",
        ],
        capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert set(summary["cells"]) == {
        "triton/shm/c1", "triton/bytes/c1", "sysv/shm/c1", "sysv/bytes/c1",
    }  # fmt: skip
    assert summary["shm_vs_bytes_min"] > 0 and summary["shm_latency_vs_memcpy"] > 0
    assert summary["perf_analyzer"] == {"skipped": "--no-perf-analyzer"}
