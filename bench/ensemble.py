"""Benchmark: a three-model pipeline (preprocess -> ONNX classifier -> postprocess) three ways,
in one run on one machine:

- ``ensemble``: asyncinfer's ensemble_classify, the steps chained inside the server;
- ``client_chain``: the same three models called one after another by the client over gRPC;
- ``glue``: example 04's glue service between its Model A and Model B services.

One load client process (bench/_chain_client.py) drives each way in turn, at each concurrency,
for several rounds (order rotated per round); the figures are medians of completed pipelines/s.

Goal (issue 7): ensemble throughput >= 1.5 x the client-side chain at every concurrency.

Run: .venv/bin/python bench/ensemble.py [--quick] [--concurrency 1,16] [--repeats 3]
The last stdout line is one JSON object with the figures, `ensemble_vs_client_chain` (per level
and `_min`) and `glue_vs_client_chain`. Exit status 1 when any pipeline failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import _infer_common as common
from _harness import (
    BUILD,
    ROOT,
    HarnessError,
    RunningServer,
    ServerSpec,
    emit,
    grpc_health_ready,
    python,
    run_json,
    serving,
)
from _peers import asyncinfer_spec

GOAL = 1.5
STEPS = ("ensemble_classify", "preprocess", "classifier_onnx", "postprocess")
MODES = ("ensemble", "client_chain", "glue")


def glue_spec() -> ServerSpec:
    """examples/04_chain/chain.py: Model A, Model B and the glue in one process."""
    return ServerSpec(
        name="glue",
        command=[python(), str(ROOT / "examples" / "04_chain" / "chain.py"), "--port", "0"],
        ready=grpc_health_ready("asyncinfer.examples.chain.Glue"),
        port_pattern=r"asyncinfer: .*serving on \S+:(\d+)",
    )


def rounds(servers: dict[str, RunningServer], args: argparse.Namespace) -> common.Samples:
    targets = {
        "ensemble": servers["asyncinfer"],
        "client_chain": servers["asyncinfer"],
        "glue": servers["glue"],
    }
    samples: common.Samples = {mode: {c: [] for c in common.levels(args)} for mode in MODES}
    per_client = len(common.levels(args)) * (args.duration + args.warmup)
    for round_ in range(args.repeats):
        shift = round_ % len(MODES)
        for mode in [*MODES[shift:], *MODES[:shift]]:
            command = [
                python(), str(ROOT / "bench" / "_chain_client.py"),
                "--url", targets[mode].address, "--mode", mode,
                "--concurrency", args.concurrency, "--duration", str(args.duration),
                "--warmup", str(args.warmup),
            ]  # fmt: skip
            result = run_json(command, timeout=60 + 3 * per_client)
            for level in result["levels"]:
                samples[mode][level["concurrency"]].append(level)
    return samples


def comparisons(load: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for mode in ("ensemble", "glue"):
        ratios = common.ratios(load, mode, "client_chain")
        result[f"{mode}_vs_client_chain"] = ratios
        result[f"{mode}_vs_client_chain_min"] = common.minimum(ratios)
    result["goal_met"] = (result["ensemble_vs_client_chain_min"] or 0) >= GOAL
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_arguments(parser, concurrency="1,16", repeats=3, duration=2.0)
    args = parser.parse_args()
    common.apply_quick(args)
    started = time.monotonic()
    specs = [asyncinfer_spec(*STEPS), glue_spec()]
    try:
        with serving(specs, BUILD / "bench-logs" / "ensemble") as servers:
            load = common.summarize(rounds(servers, args))
    except HarnessError as exc:
        print(f"bench/ensemble.py: {exc}", file=sys.stderr)
        return 1
    result = {
        "bench": "ensemble",
        "pipeline": "preprocess -> classifier_onnx -> postprocess, one 16-pixel image",
        "quick": args.quick,
        "repeats": args.repeats,
        "duration_s": args.duration,
        "pipelines_per_s": load,
        "goal": {"ensemble_vs_client_chain_min": GOAL},
        "wall_s": round(time.monotonic() - started, 1),
        **comparisons(load),
    }
    problems = common.failures(load)
    result["failures"] = problems
    emit(result)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
