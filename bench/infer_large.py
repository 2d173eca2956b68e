"""Benchmark: large tensors. `custom_identity_int32` with 1,048,576 INT32 elements (4 MiB each
way) over plain gRPC bytes, asyncinfer against the bare grpc.aio server (plain protobuf
serialization), at concurrency 1 and 4, in one run on one machine.

The same load client as bench/infer_simple.py (a separate process, tritonclient's asyncio
client at fixed concurrency) drives both servers for several short rounds; the figures are
medians. perf_analyzer then measures both with the same tensor shape.

Goal (issue 3): asyncinfer >= 2 x the bare server's throughput.

Run: .venv/bin/python bench/infer_large.py [--quick] [--elements N]
The last stdout line is one JSON object with the figures and `large_vs_bare_min`. Exit status 1
when any request or perf_analyzer run failed.
"""

from __future__ import annotations

import argparse
import sys
import time

import _infer_common as common
from _harness import BUILD, emit, serving
from _peers import asyncinfer_spec, bare_spec

MODEL = "custom_identity_int32"
ELEMENTS = 1_048_576
GOAL_VS_BARE = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_arguments(parser, concurrency="1,4", repeats=3, duration=2.0)
    parser.add_argument("--elements", type=int, default=ELEMENTS, help="INT32 elements of INPUT0")
    args = parser.parse_args()
    common.apply_quick(args)
    started = time.monotonic()
    specs = [asyncinfer_spec(MODEL), bare_spec(MODEL)]
    with serving(specs, BUILD / "bench-logs" / "infer_large") as running:
        servers = list(running.values())
        client_args = ["--elements", str(args.elements)]
        load = common.summarize(common.load_rounds(servers, MODEL, args, client_args))
        shapes = {"INPUT0": [args.elements]}
        pa = (
            {}
            if args.no_perf_analyzer
            else common.perf_analyzer_figures(servers, MODEL, args, shapes)
        )
    vs_bare = common.ratios(load, "asyncinfer", "bare")
    result = {
        "bench": "infer_large",
        "model": MODEL,
        "elements": args.elements,
        "bytes_per_tensor": 4 * args.elements,
        "quick": args.quick,
        "repeats": args.repeats,
        "duration_s": args.duration,
        "load_client": load,
        "perf_analyzer": pa,
        "wall_s": round(time.monotonic() - started, 1),
        "goals": {"large_vs_bare_min": GOAL_VS_BARE},
        "large_vs_bare": vs_bare,
        "large_vs_bare_min": common.minimum(vs_bare),
        "server_cpu_per_request_vs_bare": common.cpu_ratio(load, "asyncinfer", "bare"),
    }
    result["goals_met"] = (result["large_vs_bare_min"] or 0) >= GOAL_VS_BARE
    result["failures"] = common.failures(load, pa)
    emit(result)
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
