"""Benchmark: large tensors. `custom_identity_int32` with 1,048,576 INT32 elements (4 MiB each
way) over plain gRPC bytes: asyncinfer, the bare grpc.aio server (plain protobuf
serialization), the floor (a grpc.aio server answering pre-framed bytes and doing no other
work: bench/_floor_server.py) and real Triton (tritonserver 2.51's python backend), at
concurrency 1 and 4, in one run on one machine.

The same load client as bench/infer_simple.py (a separate process, tritonclient's asyncio
client at fixed concurrency) drives every server for several short rounds; the figures are
medians. perf_analyzer then measures each with the same tensor shape, in as many interleaved
rounds; its figures are medians too.

Goals: asyncinfer's server CPU per request <= 1.5 x the floor's (`cpu_vs_floor`) and its
throughput >= the bare server's (issue 10; issue 3 asked >= 2 x, `large_vs_bare_min`), and
>= 1 x real Triton's throughput with no more CPU per request (`ratio_vs_triton`).

Run: .venv/bin/python bench/infer_large.py [--quick] [--elements N] [--servers ...]
The last stdout line is one JSON object with the figures, `cpu_vs_floor`, `large_vs_bare_min`,
`ratio_vs_triton` (per concurrency) and `ratio_vs_triton_min`. Exit status 1 when any request
or perf_analyzer run failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import _infer_common as common
from _harness import BUILD, ServerSpec, emit, serving
from _peers import asyncinfer_spec, bare_spec, floor_spec
from _triton import triton_spec

MODEL = "custom_identity_int32"
ELEMENTS = 1_048_576
SERVERS = ("asyncinfer", "bare", "floor", "triton")
GOAL_VS_BARE = 2.0
GOAL_CPU_VS_FLOOR = 1.5
GOAL_VS_TRITON = 1.0


def specs(names: list[str], workers: int) -> list[ServerSpec]:
    makers: dict[str, Callable[[], ServerSpec]] = {
        "asyncinfer": lambda: asyncinfer_spec(MODEL, workers=workers),
        "bare": lambda: bare_spec(MODEL),
        "floor": lambda: floor_spec(MODEL),
        "triton": lambda: triton_spec(MODEL),
    }
    return [makers[name]() for name in names]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_arguments(parser, concurrency="1,4", repeats=3, duration=2.0)
    parser.add_argument("--elements", type=int, default=ELEMENTS, help="INT32 elements of INPUT0")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    parser.add_argument("--workers", type=int, default=1, help="asyncinfer worker processes")
    args = parser.parse_args()
    common.apply_quick(args)
    started = time.monotonic()
    names = [n for n in args.servers.split(",") if n]
    common.check_servers(names, SERVERS)
    with serving(specs(names, args.workers), BUILD / "bench-logs" / "infer_large") as running:
        servers = list(running.values())
        client_args = ["--elements", str(args.elements)]
        load = common.summarize(common.load_rounds(servers, MODEL, args, client_args))
        shapes = {"INPUT0": [args.elements]}
        pa = (
            {}
            if args.no_perf_analyzer
            else common.perf_analyzer_figures(servers, MODEL, args, shapes)
        )
    result = {
        "bench": "infer_large",
        "model": MODEL,
        "elements": args.elements,
        "bytes_per_tensor": 4 * args.elements,
        "quick": args.quick,
        "repeats": args.repeats,
        "duration_s": args.duration,
        "asyncinfer_workers": args.workers,
        "load_client": load,
        "perf_analyzer": pa,
        "wall_s": round(time.monotonic() - started, 1),
        "goals": {
            "large_vs_bare_min": GOAL_VS_BARE,
            "cpu_vs_floor": GOAL_CPU_VS_FLOOR,
            "ratio_vs_triton_min": GOAL_VS_TRITON,
            "server_cpu_per_request_vs_triton": 1.0,
        },
    }
    goals = []
    if "asyncinfer" in load and "bare" in load:
        vs_bare = common.ratios(load, "asyncinfer", "bare")
        result["large_vs_bare"] = vs_bare
        result["large_vs_bare_min"] = common.minimum(vs_bare)
        result["server_cpu_per_request_vs_bare"] = common.cpu_ratio(load, "asyncinfer", "bare")
        if "asyncinfer" in pa and "bare" in pa:
            result["perf_analyzer_large_vs_bare"] = common.ratios(pa, "asyncinfer", "bare")
        goals.append((result["large_vs_bare_min"] or 0) >= GOAL_VS_BARE)
    if "asyncinfer" in load and "floor" in load:
        result["cpu_vs_floor"] = common.cpu_ratio(load, "asyncinfer", "floor")
        result["throughput_vs_floor"] = common.ratios(load, "asyncinfer", "floor")
        goals.append((result["cpu_vs_floor"] or 99) <= GOAL_CPU_VS_FLOOR)
    triton = common.peer_comparison(load, pa, "triton", "triton")
    result.update(triton)
    if triton:
        goals.append((triton["ratio_vs_triton_min"] or 0) >= GOAL_VS_TRITON)
        goals.append((triton["server_cpu_per_request_vs_triton"] or 99) <= 1.0)
    result["goals_met"] = bool(goals) and all(goals)
    result["failures"] = common.failures(load, pa)
    emit(result)
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
