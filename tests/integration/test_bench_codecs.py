"""bench/codecs.py runs end to end (two sizes, short windows) and ends with its JSON summary."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

BENCH = pathlib.Path(__file__).parents[2] / "bench" / "codecs.py"


def test_bench_codecs_smoke() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--sizes", "16KiB,1MiB"],
        capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert set(summary["cells"]) == {"16KiB/c1", "16KiB/c4", "1MiB/c1", "1MiB/c4"}
    for cell in summary["cells"].values():
        for codec in ("protobuf", "flatbuffers", "raw"):
            assert cell[codec]["throughput"] > 0 and cell[codec]["errors"] == 0
            assert cell[codec]["server_cpu_us_per_call"] > 0
            assert cell[codec]["client_cpu_us_per_call"] > 0
    assert summary["flatbuffers_vs_protobuf_min"] > 0 and summary["failures"] == 0
