"""Benchmark: the same Triton python-backend model.py files (``TritonPythonModel``) served by
real Triton (tritonserver 2.51's python backend, from the nvidia-pytriton wheel) and by
asyncinfer (in process, no stub process, no IPC), in one run on one machine.

Both servers serve bench/triton_models as it is:

- ``triton_add_sub`` (examples/model_repository's model.py, INT32 [1, 16]) at c=1, 16, 64;
- ``triton_bls``: a BLS model that calls triton_add_sub with ``exec()``, at c=1 and 16;
- ``custom_identity_int32`` with 1,048,576 INT32 elements (4 MiB each way), at c=1 and 4.

The load client (bench/_load_client.py, tritonclient's asyncio client at fixed concurrency, a
process of its own) runs rounds against the servers in rotated order; figures are medians.

The ceiling: bench/_floor_server.py, a grpc.aio server that answers each request with reply
bytes framed once and does no other work, runs in the same rounds on add_sub. Its throughput
against Triton's (``ceiling_vs_triton``) is the most any Python server on grpc.aio reaches on
this machine, asyncinfer included. A BLS request is one such unary call plus a call of add_sub,
so no grpc.aio server answers it faster than the floor answers add_sub: ``bls_ceiling_vs_triton``
(the floor's add_sub over Triton's BLS, level by level) is the most asyncinfer's BLS ratio can
be.

Goals (issue 13): asyncinfer >= 1x Triton's throughput at every level and at 4 MiB, with a
lower p99; >= 2x on the BLS model.

Run: .venv/bin/python bench/python_backend.py [--quick] [--repeats 3] [--duration 2]
The last stdout line is one JSON object with ``ratio_vs_triton_min`` (asyncinfer / Triton
throughput, the lowest over every case and level), ``ceiling_vs_triton_min`` (the floor's over
Triton's, the lowest) and ``bls_ceiling_vs_triton_max``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import _infer_common as common
from _harness import BUILD, ServerSpec, emit, python, ratio, serving, triton_ready
from _peers import floor_spec
from _triton import TRITON_MODELS, triton_spec

ELEMENTS = 1_048_576
#: case -> (model, concurrency levels, load-client arguments, whether the floor runs it)
CASES: dict[str, tuple[str, str, list[str], bool]] = {
    "add_sub": ("triton_add_sub", "1,16,64", [], True),
    "bls": ("triton_bls", "1,16", [], False),
    "identity_4mib": ("custom_identity_int32", "1,4", ["--elements", str(ELEMENTS)], False),
}
MODELS = sorted({model for model, *_ in CASES.values()})
FLOOR_MODELS = sorted({model for model, *_, floor in CASES.values() if floor})
GOALS = {"ratio_vs_triton_min": 1.0, "bls_ratio_min": 2.0}


def asyncinfer_spec(repository: Path) -> ServerSpec:
    """`asyncinfer serve` over the same repository Triton serves."""
    command = [str(Path(python()).parent / "asyncinfer"), "serve",
               "--model-repository", str(repository), "--grpc-port", "0",
               "--allow-http", "false", "--allow-metrics", "false"]  # fmt: skip
    return ServerSpec(
        name="asyncinfer",
        command=command,
        ready=triton_ready(*MODELS),
        port_pattern=r"asyncinfer: .*serving on \S+:(\d+)",
    )


def run_case(servers: dict[str, Any], case: str, args: argparse.Namespace) -> dict[str, Any]:
    model, concurrency, client_args, floor = CASES[case]
    case_args = argparse.Namespace(**{**vars(args), "concurrency": concurrency})
    names = ["asyncinfer", "triton", *(["floor"] if floor else [])]
    load = common.summarize(
        common.load_rounds([servers[n] for n in names], model, case_args, client_args)
    )
    ratios = common.ratios(load, "asyncinfer", "triton")
    p99_lower = {
        level: figures["p99_ms"] is not None
        and load["triton"][level]["p99_ms"] is not None
        and figures["p99_ms"] < load["triton"][level]["p99_ms"]
        for level, figures in load["asyncinfer"].items()
    }
    for level, value in ratios.items():
        a, t = load["asyncinfer"][level], load["triton"][level]
        shown = "n/a" if value is None else f"{value:.2f}"
        ceiling = ""
        if floor:
            f = load["floor"][level]["throughput"]
            ceiling = f" | floor {f:8.1f}/s ({_shown(ratio(f, t['throughput']))})"
        print(f"{case:14} c={level:>3}: asyncinfer {a['throughput']:8.1f}/s p99 {a['p99_ms']:.2f} "
              f"ms | triton {t['throughput']:8.1f}/s p99 {t['p99_ms']:.2f} ms | ratio {shown}"
              f"{ceiling}", flush=True)  # fmt: skip
    result = {
        "model": model,
        "load_client": load,
        "ratio_vs_triton": ratios,
        "p99_lower": p99_lower,
    }
    if floor:
        result["ceiling_vs_triton"] = common.ratios(load, "floor", "triton")
        result["ratio_vs_floor"] = common.ratios(load, "asyncinfer", "floor")
    return result


def _shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x triton"


def bls_ceiling(cases: dict[str, Any]) -> dict[str, float | None]:
    """Per BLS level: the floor's add_sub throughput over Triton's BLS throughput, the most a
    BLS ratio can be at that level (None where add_sub was not run at that level)."""
    add_sub = cases["add_sub"]["load_client"]["floor"]
    bls = cases["bls"]["load_client"]["triton"]
    return {
        level: ratio(add_sub[level]["throughput"], figures["throughput"])
        if level in add_sub
        else None
        for level, figures in bls.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_arguments(parser, concurrency="", repeats=3, duration=2.0)
    args = parser.parse_args()
    common.apply_quick(args)
    started = time.monotonic()
    specs = [asyncinfer_spec(TRITON_MODELS), triton_spec(*MODELS), floor_spec(*FLOOR_MODELS)]
    with serving(specs, BUILD / "bench-logs" / "python_backend") as running:
        cases = {case: run_case(running, case, args) for case in CASES}
    ceilings = {
        f"{case}@c{level}": value
        for case, result in cases.items()
        for level, value in result.get("ceiling_vs_triton", {}).items()
    }
    bls_ceilings = bls_ceiling(cases)
    for level, value in bls_ceilings.items():
        print(f"bls ceiling    c={level:>3}: floor add_sub / triton BLS = "
              f"{'n/a' if value is None else f'{value:.2f}'}", flush=True)  # fmt: skip
    every = {
        f"{case}@c{level}": value
        for case, result in cases.items()
        for level, value in result["ratio_vs_triton"].items()
    }
    result: dict[str, Any] = {
        "bench": "python_backend",
        "quick": args.quick,
        "repeats": args.repeats,
        "duration_s": args.duration,
        "cases": cases,
        "wall_s": round(time.monotonic() - started, 1),
        "goals": GOALS,
        "ratio_vs_triton": every,
        "ratio_vs_triton_min": common.minimum(every),
        "bls_ratio_min": common.minimum(cases["bls"]["ratio_vs_triton"]),
        "ceiling_vs_triton": ceilings,
        "ceiling_vs_triton_min": common.minimum(ceilings),
        "bls_ceiling_vs_triton": bls_ceilings,
        "bls_ceiling_vs_triton_max": max(
            (v for v in bls_ceilings.values() if v is not None), default=None
        ),
        "p99_lower_everywhere": all(
            lower for result in cases.values() for lower in result["p99_lower"].values()
        ),
    }
    result["goals_met"] = all((result[key] or 0) >= goal for key, goal in GOALS.items())
    result["failures"] = common.failures(*(c["load_client"] for c in cases.values()))
    emit(result)
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
