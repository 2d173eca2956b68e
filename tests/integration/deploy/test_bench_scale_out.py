"""bench/scale_out.py runs end to end (one round, short windows) and ends with its JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ..._nginx import ensure_nginx

BENCH = Path(__file__).resolve().parents[3] / "bench" / "scale_out.py"


def test_bench_scale_out_smoke() -> None:
    ensure_nginx()
    done = subprocess.run(
        [sys.executable, str(BENCH), "--rounds", "1", "--seconds", "0.4", "--warmup", "0.1",
         "--concurrency", "4"],
        capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    for name in ("direct1", "nginx1", "direct2", "nginx2"):
        assert summary[name]["throughput"] > 0 and summary[name]["errors"] == 0, summary[name]
    assert summary["nginx_vs_direct"] > 0 and summary["goal_nginx_vs_direct"] == 0.8
    assert "cores" in summary["note"]
