"""Benchmark: dynamic batching on the compute-heavy ONNX model, with and without, in one run.

One asyncinfer server serves two copies of examples/model_repository/mlp_onnx (a deep MLP bound
by reading its weights, so a batch of 32 costs about twice one item): `mlp_batched` with the
example's dynamic_batching block and `mlp_unbatched` without it (one request per execute). Both
have one KIND_CPU instance (one ONNX Runtime session). perf_analyzer (Triton's load tool, a
separate process) drives each at concurrency 32, alternating, for several rounds; the figures
are medians. The server's own statistics give the mean batch size it formed.

Goal (issue 4): batched / unbatched throughput >= 3.

Run: .venv/bin/python bench/batching.py [--quick] [--concurrency 32] [--repeats 3] [--sweep]
``--sweep`` also runs perf_analyzer at concurrency 1 to 64 (step 21) against `mlp_batched` and
prints its full report, the server-side statistics included, to stderr. The last stdout line
is one JSON object with the figures and `batching_ratio`. Exit status 1 when a perf_analyzer
run failed.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _harness import BUILD, ROOT, ServerSpec, emit, python, ratio, serving, triton_ready

from asyncinfer._perf_analyzer import PerfAnalyzerError, run_perf_analyzer

SOURCE = ROOT / "examples" / "model_repository" / "mlp_onnx"
MODELS = ("mlp_batched", "mlp_unbatched")
GOAL = 3.0


def build_repository(target: Path) -> Path:
    """Two copies of mlp_onnx under ``target``: with and without dynamic_batching."""
    model = SOURCE / "1" / "model.onnx"
    if not model.is_file():
        raise SystemExit(f"{model} is missing: run `make models` first")
    shutil.rmtree(target, ignore_errors=True)
    config = (SOURCE / "config.pbtxt").read_text()
    unbatched = re.sub(r"dynamic_batching \{.*?\n\}\n", "", config, flags=re.S)
    if unbatched == config:
        raise SystemExit(f"{SOURCE / 'config.pbtxt'} has no dynamic_batching block to remove")
    for name, text in (("mlp_batched", config), ("mlp_unbatched", unbatched)):
        folder = target / name
        (folder / "1").mkdir(parents=True)
        (folder / "config.pbtxt").write_text(text.replace('name: "mlp_onnx"', f'name: "{name}"'))
        (folder / "1" / "model.onnx").symlink_to(model)
    return target


def server_spec(repository: Path) -> ServerSpec:
    """`asyncinfer serve` on the two-model repository, as users start it."""
    command = [
        str(Path(python()).parent / "asyncinfer"), "serve",
        "--model-repository", str(repository), "--grpc-port", "0",
        "--allow-http", "false", "--allow-metrics", "false",
    ]  # fmt: skip
    return ServerSpec(
        name="asyncinfer",
        command=command,
        ready=triton_ready(*MODELS),
        port_pattern=r"asyncinfer: .*serving on \S+:(\d+)",
    )


def measure(address: str, model: str, args: argparse.Namespace) -> dict[str, Any]:
    interval, stability = (500, 100) if args.quick else (1500, 50)
    run = run_perf_analyzer(
        address, model, concurrency=args.concurrency, measurement_interval_ms=interval,
        stability_percent=stability, max_trials=6, kill_after=100,
    )  # fmt: skip
    try:
        result = asyncio.run(run)
    except PerfAnalyzerError as exc:
        return {"error": str(exc).splitlines()[0]}
    row = result.row(args.concurrency)
    return {"throughput": row.throughput, "p50_ms": row.p50_us / 1000, "p99_ms": row.p99_us / 1000}


def sweep(address: str) -> dict[str, Any]:
    """perf_analyzer 1..64 against the batched model; its report (server statistics) to stderr."""
    run = run_perf_analyzer(
        address, "mlp_batched", concurrency=(1, 64, 21), measurement_interval_ms=1000,
        stability_percent=60, max_trials=8, kill_after=300,
    )  # fmt: skip
    try:
        result = asyncio.run(run)
    except PerfAnalyzerError as exc:
        print(getattr(exc, "output", ""), file=sys.stderr)
        return {"error": str(exc).splitlines()[0]}
    print(result.output, file=sys.stderr)
    return {str(row.concurrency): row.throughput for row in result.rows}


def batch_sizes(address: str) -> dict[str, float | None]:
    """Mean items per execution of each model, from the server's statistics."""
    import tritonclient.grpc as grpcclient

    means: dict[str, float | None] = {}
    with grpcclient.InferenceServerClient(address) as client:
        for model in MODELS:
            (stats,) = client.get_inference_statistics(model).model_stats
            means[model] = ratio(stats.inference_count, stats.execution_count)
    return means


def median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if key in run]
    return statistics.median(values) if values and len(values) == len(runs) else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round: a smoke run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="rounds; medians are taken")
    parser.add_argument("--sweep", action="store_true", help="also perf_analyzer 1..64, report")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
    started = time.monotonic()
    repository = build_repository(BUILD / "bench-batching" / "models")
    runs: dict[str, list[dict[str, Any]]] = {model: [] for model in MODELS}
    with serving([server_spec(repository)], BUILD / "bench-logs" / "batching") as running:
        address = running["asyncinfer"].address
        for round_ in range(args.repeats):
            # Alternate which model goes first so that drift of the machine favours neither.
            order = MODELS if round_ % 2 == 0 else MODELS[::-1]
            for model in order:
                runs[model].append(measure(address, model, args))
        means = batch_sizes(address)
        swept = sweep(address) if args.sweep else None
    figures = {
        model: {key: median(model_runs, key) for key in ("throughput", "p50_ms", "p99_ms")}
        for model, model_runs in runs.items()
    }
    failures = [
        f"{model}: {run['error']}" for model, rs in runs.items() for run in rs if "error" in run
    ]
    batching_ratio = ratio(
        figures["mlp_batched"]["throughput"], figures["mlp_unbatched"]["throughput"]
    )
    result = {
        "bench": "batching",
        "model": "mlp_onnx",
        "quick": args.quick,
        "concurrency": args.concurrency,
        "repeats": args.repeats,
        "perf_analyzer": figures,
        "runs": runs,
        "mean_batch_size": means,
        "sweep_throughput": swept,
        "failures": failures,
        "wall_s": round(time.monotonic() - started, 1),
        "goal": {"batching_ratio": GOAL},
        "goal_met": batching_ratio is not None and batching_ratio >= GOAL,
        "batching_ratio": batching_ratio,
    }
    emit(result)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
