"""Scale-out through nginx: throughput and p99 of ModelInfer (`simple`) through nginx against
direct calls, with one and with two backends, measured in one run.

    .venv/bin/python bench/scale_out.py [--rounds 3] [--seconds 3] [--concurrency 16]

Four configurations, each round running all four in a rotated order (medians over rounds):
  direct1  client -> backend A
  nginx1   client -> nginx -> A
  direct2  client -> A and B (asyncinfer's client, gRPC round_robin)
  nginx2   client -> nginx -> A and B
The load client, nginx and the backends share this machine's cores. With 2 cores a second
backend cannot double the throughput: the two-backend figures show what balancing costs and
that calls spread, not how a cluster scales. Goal: nginx1 >= 0.8 x direct1. Last line: JSON with
`nginx_vs_direct`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from _harness import ROOT, ServerSpec, emit, grpc_health_ready, median_of, python, ratio, run_json
from _harness import serving as serving_servers

sys.path.insert(0, str(ROOT / "deploy" / "nginx"))
from nginx_lb import Nginx

GOAL = 0.8
KEYS = ["throughput", "p50_ms", "p99_ms", "errors"]
NAMES = ("direct1", "nginx1", "direct2", "nginx2")


def _backend(name: str) -> ServerSpec:
    command = [
        python(), "-m", "asyncinfer.cli", "serve",
        "--model-repository", str(ROOT / "examples" / "model_repository"),
        "--model-control-mode", "explicit", "--load-model", "simple",
        "--grpc-port", "{port}", "--log-format", "text",
        "--allow-http", "false", "--allow-metrics", "false",
    ]  # fmt: skip
    return ServerSpec(name, command, grpc_health_ready())


def _targets(stack: ExitStack, folder: Path) -> dict[str, str]:
    """Every configuration's target address, the servers and nginx started on ``stack``."""
    servers = stack.enter_context(serving_servers([_backend("a"), _backend("b")], folder))
    a, b = servers["a"].address, servers["b"].address
    nginx1 = stack.enter_context(Nginx([a], folder=folder / "nginx1"))
    nginx2 = stack.enter_context(Nginx([a, b], folder=folder / "nginx2"))
    return {"direct1": a, "nginx1": nginx1.grpc_address, "direct2": f"{a},{b}",
            "nginx2": nginx2.grpc_address}  # fmt: skip


def _measure(target: str, args: argparse.Namespace) -> dict[str, float]:
    command = [
        python(), str(ROOT / "bench" / "_ping_client.py"), target, "--rpc", "infer",
        "--concurrency", str(args.concurrency), "--seconds", str(args.seconds),
        "--warmup", str(args.warmup),
    ]  # fmt: skip
    sample: dict[str, float] = run_json(command, timeout=args.seconds + args.warmup + 60)
    return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in NAMES}
    with tempfile.TemporaryDirectory(prefix="bench-scale-out-") as tmp, ExitStack() as stack:
        targets = _targets(stack, Path(tmp))
        for round_ in range(args.rounds):
            shift = round_ % len(NAMES)
            for name in (*NAMES[shift:], *NAMES[:shift]):
                sample = _measure(targets[name], args)
                samples[name].append(sample)
                print(
                    f"round {round_ + 1} {name:8}: {sample['throughput']:8.0f}/s "
                    f"p99 {sample['p99_ms']:6.2f} ms errors {sample['errors']}",
                    flush=True,
                )
    medians = {name: median_of(samples[name], KEYS) for name in NAMES}
    throughput = {name: medians[name]["throughput"] for name in NAMES}
    nginx_vs_direct = ratio(throughput["nginx1"], throughput["direct1"])
    emit({
        "cores": os.cpu_count(),
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        **medians,
        "nginx_vs_direct": nginx_vs_direct,
        "nginx2_vs_direct2": ratio(throughput["nginx2"], throughput["direct2"]),
        "nginx2_vs_nginx1": ratio(throughput["nginx2"], throughput["nginx1"]),
        "p99_nginx1_vs_direct1": ratio(medians["nginx1"]["p99_ms"], medians["direct1"]["p99_ms"]),
        "goal_nginx_vs_direct": GOAL,
        "goal_met": nginx_vs_direct is not None and nginx_vs_direct >= GOAL,
        "note": f"{os.cpu_count()} cores shared by the load client, nginx and the backends bound "
                "the scaling from one backend to two here",
    })  # fmt: skip


if __name__ == "__main__":
    main()
