"""Benchmark: a CPU-bound pure-Python model with 2 process instances against 2 thread
instances, served by one asyncinfer server in one run.

The model's work is a pure-Python loop that holds the GIL for about 5 ms per request (the
iteration count is calibrated on this machine at the start, then fixed: both kinds do exactly
the same work). Thread instances share the server process's GIL; process instances
(``instance_kind: process``) each have their own, with tensors passed through shared memory.
A separate load client process (bench/_busy_client.py) keeps 8 requests in flight against each
model in turn, for several rounds; the figures are medians.

Goal (issue 4): process / thread throughput >= 1.6 on 2 cores.

Run: .venv/bin/python bench/python_instances.py [--quick] [--rounds 3] [--seconds 4]
Last stdout line: one JSON object with `process_vs_thread_ratio`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from _busy_client import busy
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
    triton_ready,
)

GOAL = 1.6
WORK_SECONDS = 0.005
KINDS = ("thread", "process")

CONFIG = """name: "busy_{kind}"
backend: "python"
max_batch_size: 0
parameters {{ key: "instance_kind" value {{ string_value: "{kind}" }} }}
parameters {{ key: "busy_iterations" value {{ string_value: "{iterations}" }} }}
input [ {{ name: "IN" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 2 }} ]
"""

MODEL = '''"""busy: OUT = a pure-Python loop over IN, holding the GIL (_busy_client.busy)."""

import json

import numpy as np

from asyncinfer.inference.python_model import Response, Tensor

MODULUS = 1_000_003


class Model:
    def initialize(self, args):
        parameters = json.loads(args["model_config"])["parameters"]
        self.iterations = int(parameters["busy_iterations"]["stringValue"])

    def execute(self, requests):  # plain def: thread instances run it in worker threads
        responses = []
        for request in requests:
            x = int(request.input("IN").as_numpy()[0])
            acc = 0
            for i in range(self.iterations):
                acc = (acc + i * x) % MODULUS
            responses.append(Response([Tensor("OUT", np.array([acc], np.int32))]))
        return responses
'''


def calibrate() -> int:
    """Loop iterations that take WORK_SECONDS here (the fastest of several timings: the least
    disturbed by other work on the machine)."""
    probe = 20_000
    per_iteration = []
    for _ in range(7):
        start = time.perf_counter()
        busy(7, probe)
        per_iteration.append((time.perf_counter() - start) / probe)
    return max(int(WORK_SECONDS / min(per_iteration)), 1)


def write_repository(root: Path, iterations: int) -> None:
    shutil.rmtree(root, ignore_errors=True)
    for kind in KINDS:
        model = root / f"busy_{kind}"
        (model / "1").mkdir(parents=True)
        (model / "config.pbtxt").write_text(CONFIG.format(kind=kind, iterations=iterations))
        (model / "1" / "model.py").write_text(MODEL)


def server_spec(repository: Path) -> ServerSpec:
    # `asyncinfer serve`, as users start it.
    command = [str(Path(python()).parent / "asyncinfer"), "serve",
               "--model-repository", str(repository), "--grpc-port", "0",
               "--allow-http", "false", "--allow-metrics", "false"]  # fmt: skip
    return ServerSpec(
        "asyncinfer-busy",
        command,
        triton_ready(*(f"busy_{kind}" for kind in KINDS)),
        port_pattern=r"asyncinfer: .*serving on \S+:(\d+)",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 1.0
    iterations = calibrate()
    repository = Path(BUILD) / "bench-python-instances"
    write_repository(repository, iterations)
    samples: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    failed = False
    with serving([server_spec(repository)], Path(BUILD) / "bench-logs") as servers:
        address = servers["asyncinfer-busy"].address
        for round_ in range(args.rounds):
            for kind in KINDS if round_ % 2 == 0 else tuple(reversed(KINDS)):
                command = [python(), str(BENCH / "_busy_client.py"), "--url", address,
                           "--model", f"busy_{kind}", "--iterations", str(iterations),
                           "--concurrency", str(args.concurrency),
                           "--duration", str(args.seconds)]  # fmt: skip
                sample = run_json(command, timeout=args.seconds + 60)
                failed |= bool(sample["errors"])
                samples[kind].append(sample)
                print(f"round {round_ + 1} {kind:7}: {sample['throughput']:7.1f}/s "
                      f"p50 {sample['p50_ms']:.1f} ms p99 {sample['p99_ms']:.1f} ms "
                      f"errors {sample['errors']} {sample['first_error'] or ''}",
                      flush=True)  # fmt: skip
    keys = ["throughput", "p50_ms", "p99_ms", "errors"]
    thread, process = median_of(samples["thread"], keys), median_of(samples["process"], keys)
    value = ratio(process["throughput"], thread["throughput"])
    emit({
        "cores": os.cpu_count(), "concurrency": args.concurrency, "rounds": args.rounds,
        "seconds": args.seconds, "work_ms": WORK_SECONDS * 1000, "iterations": iterations,
        "thread": thread, "process": process, "process_vs_thread_ratio": value,
        "goal": GOAL, "goal_met": value is not None and value >= GOAL,
        "note": "one server, both models, client in its own process on the same cores",
    })  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
