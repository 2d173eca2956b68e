"""Benchmark: the same identity service with three codecs (protobuf bytes field, the FlatBuffers
tensor message, hand-framed raw bytes) at 16 KiB, 1 MiB and 16 MiB, at concurrency 1 and 4, in
one run on one machine. Server CPU per call, client CPU per call and throughput per cell.

One asyncinfer server serves all three methods (bench/_codecs_server.py); the load client
(bench/_codecs_client.py, a separate process, asyncinfer's AsyncClient with each codec) runs
every codec at every concurrency for one size per process. Rounds interleave the codecs, in an
order rotated each round so slow drift of the machine favours none; figures are medians.

Goals (issue 16): FlatBuffers >= 2x protobuf's throughput at 1 MiB and above; within 1.2x of
hand-framed bytes (raw / FlatBuffers <= 1.2); no slower than protobuf at 16 KiB. Hand-framed
bytes do no codec work at all, so ``raw_vs_protobuf`` (per cell) is the most any codec can
gain over protobuf there: where it is under 2, the transport (grpc.aio's receive and send, the
copies every codec shares) is what bounds the 2x goal.

Run: .venv/bin/python bench/payload_codecs.py [--quick] [--rounds 3] [--duration 2]
The last stdout line is one JSON object with the figures and `flatbuffers_vs_protobuf_min`
(the smallest FlatBuffers / protobuf throughput ratio at 1 MiB and above).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Any

from _harness import (
    BENCH,
    BUILD,
    ServerSpec,
    emit,
    median_of,
    python,
    ratio,
    run_json,
    serving,
)

CODECS = ("protobuf", "flatbuffers", "raw")
SIZES = {"16KiB": 16 << 10, "1MiB": 1 << 20, "16MiB": 16 << 20}
LEVELS = (1, 4)
FIGURES = ("throughput", "client_cpu_us_per_call", "server_cpu_us_per_call", "p50_ms")
GOALS = {"flatbuffers_vs_protobuf_min": 2.0, "raw_vs_flatbuffers_max": 1.2,
         "flatbuffers_vs_protobuf_16KiB_min": 1.0}  # fmt: skip


def _always(address: str) -> bool:
    return True


SERVER = ServerSpec(
    "asyncinfer",
    [python(), str(BENCH / "_codecs_server.py"), "--port", "0"],
    _always,
    port_pattern=r"serving on 127\.0\.0\.1:(\d+)",
)


def rounds(address: str, pid: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        order = CODECS[round_ % 3 :] + CODECS[: round_ % 3]
        for label in args.sizes:
            size = SIZES[label]
            command = [
                python(), str(BENCH / "_codecs_client.py"), address, "--server-pid", str(pid),
                "--size", str(size), "--codecs", ",".join(order),
                "--concurrency", ",".join(map(str, LEVELS)),
                "--duration", str(args.duration), "--warmup", str(args.warmup),
            ]  # fmt: skip
            budget = 120 + 3 * len(CODECS) * len(LEVELS) * (args.duration + args.warmup)
            for run in run_json(command, timeout=budget)["runs"]:
                run["label"] = label
                runs.append(run)
                print(
                    f"round {round_ + 1} {label:>6} c={run['concurrency']} {run['codec']:<11} "
                    f"{run['throughput']:8.1f}/s  server {run['server_cpu_us_per_call'] or 0:8.0f}"
                    f" us/call  client {run['client_cpu_us_per_call'] or 0:8.0f} us/call  "
                    f"errors {run['errors']}",
                    flush=True,
                )
    return runs


def summarize(runs: list[dict[str, Any]], sizes: list[str]) -> dict[str, Any]:
    cells: dict[str, Any] = {}
    for label in sizes:
        for level in LEVELS:
            cell: dict[str, Any] = {}
            for codec in CODECS:
                mine = [r for r in runs if (r["label"], r["concurrency"], r["codec"]) ==
                        (label, level, codec)]  # fmt: skip
                cell[codec] = {**median_of(mine, FIGURES), "errors": sum(r["errors"] for r in mine)}
            proto, flat, raw = (cell[codec]["throughput"] for codec in CODECS)
            cell["flatbuffers_vs_protobuf"] = ratio(flat, proto)
            cell["raw_vs_flatbuffers"] = ratio(raw, flat)
            # The ceiling of any codec in this cell: hand-framed bytes, no codec work at all.
            cell["raw_vs_protobuf"] = ratio(raw, proto)
            cells[f"{label}/c{level}"] = cell
    return cells


def _extreme(cells: dict[str, Any], key: str, labels: tuple[str, ...], pick: Any) -> Any:
    values = [cell[key] for name, cell in cells.items() if name.split("/")[0] in labels]
    numbers = [v for v in values if v is not None]
    return pick(numbers) if numbers and len(numbers) == len(values) else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round: a smoke run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=0.3, help="unrecorded seconds per run")
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"some of {', '.join(SIZES)}")
    args = parser.parse_args()
    args.sizes = args.sizes.split(",")
    if not set(args.sizes) <= set(SIZES):
        parser.error(f"--sizes takes some of {', '.join(SIZES)}")
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 0.3, 0.1
    started = time.monotonic()
    with serving([SERVER], BUILD / "bench-logs" / "codecs") as running:
        server = running["asyncinfer"]
        runs = rounds(server.address, server.process.pid, args)
    cells = summarize(runs, args.sizes)
    large = ("1MiB", "16MiB")
    result: dict[str, Any] = {
        "bench": "codecs",
        "machine": f"{platform.node()} ({os.cpu_count()} cores)",
        "quick": args.quick, "rounds": args.rounds, "duration_s": args.duration,
        "cells": cells,
        "flatbuffers_vs_protobuf_min": _extreme(cells, "flatbuffers_vs_protobuf", large, min),
        "flatbuffers_vs_protobuf_16KiB_min": _extreme(
            cells, "flatbuffers_vs_protobuf", ("16KiB",), min
        ),
        "raw_vs_flatbuffers_max": _extreme(cells, "raw_vs_flatbuffers", tuple(SIZES), max),
        "raw_vs_protobuf": {name: cell["raw_vs_protobuf"] for name, cell in cells.items()},
        "sizes": args.sizes,
        "goals": GOALS,
        "failures": sum(r["errors"] for r in runs),
        "wall_s": round(time.monotonic() - started, 1),
    }  # fmt: skip
    result["goals_met"] = (
        (result["flatbuffers_vs_protobuf_min"] or 0) >= GOALS["flatbuffers_vs_protobuf_min"]
        and (result["flatbuffers_vs_protobuf_16KiB_min"] or 0)
        >= GOALS["flatbuffers_vs_protobuf_16KiB_min"]
        and (result["raw_vs_flatbuffers_max"] or 99) <= GOALS["raw_vs_flatbuffers_max"]
    )
    emit(result)
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
