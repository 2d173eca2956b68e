"""Benchmark: Triton's `simple` model (INT32 add/sub, [1, 16]) served by asyncinfer, by a bare
grpc.aio server doing the same arithmetic, by real Triton (tritonserver 2.51's python backend)
and by MLServer, in one run on one machine.

One load client (bench/_load_client.py: tritonclient's asyncio client at fixed concurrency, a
separate process) drives every server the same way at each concurrency, for several short
rounds; the figures are medians. perf_analyzer then measures asyncinfer, the bare server and
Triton (it cannot drive MLServer, which has no ModelConfig RPC) in as many interleaved rounds,
and its figures are medians too.

Goals: asyncinfer >= 0.95 x the bare server's throughput at every concurrency and at most 1.05 x
its server CPU per request (issue 10), >= 1 x real Triton's throughput at every concurrency
with no more CPU per request (issue 10), >= 2.5 x MLServer's and a lower p99 (issue 3).

Run: .venv/bin/python bench/infer_simple.py [--quick] [--servers asyncinfer,bare,triton,mlserver]
     [--workers N] [--streaming]
The last stdout line is one JSON object with the figures, `ratio_vs_bare_min`,
`ratio_vs_triton` (per concurrency), `ratio_vs_triton_min` and `ratio_vs_mlserver_min` (those
of the servers run). Exit status 1 when any request or perf_analyzer run failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import _infer_common as common
from _harness import BUILD, ServerSpec, emit, serving
from _peers import asyncinfer_spec, bare_spec, mlserver_spec
from _triton import triton_spec

SERVERS = ("asyncinfer", "bare", "triton", "mlserver")
# The servers with ModelStreamInfer (the bare server has only the unary RPCs).
STREAMING_SERVERS = ("asyncinfer", "triton")
GOAL_VS_BARE = 0.95
GOAL_CPU_VS_BARE = 1.05
GOAL_VS_TRITON = 1.0
GOAL_VS_MLSERVER = 2.5


def specs(names: list[str], workers: int) -> list[ServerSpec]:
    makers: dict[str, Callable[[], ServerSpec]] = {
        "asyncinfer": lambda: asyncinfer_spec("simple", workers=workers),
        "bare": lambda: bare_spec("simple"),
        "triton": lambda: triton_spec("simple"),
        "mlserver": mlserver_spec,
    }
    return [makers[name]() for name in names]


def comparisons(load: dict[str, Any], pa: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {
        **common.peer_comparison(load, pa, "bare", "bare"),
        **common.peer_comparison(load, pa, "triton", "triton"),
    }
    if "asyncinfer" in load and "mlserver" in load:
        result["ratio_vs_mlserver"] = common.ratios(load, "asyncinfer", "mlserver")
        result["ratio_vs_mlserver_min"] = common.minimum(result["ratio_vs_mlserver"])
        result["server_cpu_per_request_vs_mlserver"] = common.cpu_ratio(
            load, "asyncinfer", "mlserver"
        )
        result["p99_below_mlserver"] = {
            level: figures["p99_ms"] is not None
            and figures["p99_ms"] < load["mlserver"][level]["p99_ms"]
            for level, figures in load["asyncinfer"].items()
        }
    goals = []
    if "ratio_vs_bare_min" in result:
        goals.append((result["ratio_vs_bare_min"] or 0) >= GOAL_VS_BARE)
        goals.append((result["server_cpu_per_request_vs_bare"] or 99) <= GOAL_CPU_VS_BARE)
    if "ratio_vs_triton_min" in result:
        goals.append((result["ratio_vs_triton_min"] or 0) >= GOAL_VS_TRITON)
        goals.append((result["server_cpu_per_request_vs_triton"] or 99) <= 1.0)
    if "ratio_vs_mlserver_min" in result:
        goals.append((result["ratio_vs_mlserver_min"] or 0) >= GOAL_VS_MLSERVER)
        goals.append(all(result["p99_below_mlserver"].values()))
    if goals:
        result["goals_met"] = all(goals)
    return result


def streaming_comparisons(pa: dict[str, Any], streaming: dict[str, Any]) -> dict[str, Any]:
    """Streaming as a lever: asyncinfer streamed over Triton streamed, and over its own unary
    figures (perf_analyzer both). Not a goal of its own; the goals above are unary."""
    result: dict[str, Any] = {}
    if "asyncinfer" in streaming and "triton" in streaming:
        result["streaming_ratio_vs_triton"] = common.ratios(streaming, "asyncinfer", "triton")
        result["streaming_ratio_vs_triton_min"] = common.minimum(
            result["streaming_ratio_vs_triton"]
        )
    if "asyncinfer" in streaming and "asyncinfer" in pa:
        both = {"streamed": streaming["asyncinfer"], "unary": pa["asyncinfer"]}
        result["asyncinfer_streaming_vs_unary"] = common.ratios(both, "streamed", "unary")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_arguments(parser, concurrency="1,16,64", repeats=3, duration=1.5)
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    parser.add_argument("--workers", type=int, default=1, help="asyncinfer worker processes")
    parser.add_argument(
        "--streaming",
        action="store_true",
        help="also perf_analyzer --streaming (ModelStreamInfer) against asyncinfer and Triton",
    )
    args = parser.parse_args()
    common.apply_quick(args)
    started = time.monotonic()
    names = [n for n in args.servers.split(",") if n]
    common.check_servers(names, SERVERS)
    with serving(specs(names, args.workers), BUILD / "bench-logs" / "infer_simple") as running:
        servers = list(running.values())
        load = common.summarize(common.load_rounds(servers, "simple", args))
        pa_servers = [s for s in servers if s.name != "mlserver"]
        pa = (
            {}
            if args.no_perf_analyzer
            else common.perf_analyzer_figures(pa_servers, "simple", args)
        )
        streamed = [s for s in pa_servers if s.name in STREAMING_SERVERS]
        streaming = (
            common.perf_analyzer_figures(streamed, "simple", args, extra=["--streaming"])
            if args.streaming and not args.no_perf_analyzer
            else {}
        )
    result = {
        "bench": "infer_simple",
        "model": "simple",
        "quick": args.quick,
        "repeats": args.repeats,
        "duration_s": args.duration,
        "asyncinfer_workers": args.workers,
        "load_client": load,
        "perf_analyzer": pa,
        **({"perf_analyzer_streaming": streaming} if streaming else {}),
        "wall_s": round(time.monotonic() - started, 1),
        "goals": {
            "ratio_vs_bare_min": GOAL_VS_BARE,
            "server_cpu_per_request_vs_bare": GOAL_CPU_VS_BARE,
            "ratio_vs_triton_min": GOAL_VS_TRITON,
            "server_cpu_per_request_vs_triton": 1.0,
            "ratio_vs_mlserver_min": GOAL_VS_MLSERVER,
        },
        **comparisons(load, pa),
        **streaming_comparisons(pa, streaming),
    }
    problems = common.failures(load, pa, streaming)
    result["failures"] = problems
    emit(result)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
