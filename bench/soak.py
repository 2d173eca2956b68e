"""Soak: the reliability scenarios at their full counts, by hand (tests/reliability runs them
smaller, in CI). The last stdout line is one JSON object with every scenario's figures.

    .venv/bin/python bench/soak.py            # full counts, about ten minutes
    .venv/bin/python bench/soak.py --quick    # CI's counts, a smoke run

Scenarios (bench/_reliability.py): the bad-input corpus and 20,000 hypothesis-fuzzed
ModelInferRequest byte strings; 5x overload of `simple` and of the dynamically batched
`mlp_onnx` (30 s each, 1 s deadlines); 2,000 idle connections and 500 idle streams while
others are served; 1,000 load/unload cycles (every 10th of a process-instance model);
SIGKILL of one of 2 workers under load; 10,000 cancellations, then every admission counter
and queue.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import _reliability as reliability
from _harness import emit

FULL: dict[str, Any] = {
    "fuzz": 20_000,
    "overload_s": 30.0,
    "connections": 2_000,
    "streams": 500,
    "cycles": 1_000,
    "cancellations": 10_000,
    "kill_s": 10.0,
}
QUICK: dict[str, Any] = {
    "fuzz": 2_000,
    "overload_s": 2.0,
    "connections": 500,
    "streams": 100,
    "cycles": 30,
    "cancellations": 2_000,
    "kill_s": 4.0,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI's smaller counts")
    args = parser.parse_args()
    counts = QUICK if args.quick else FULL
    reliability.raise_fd_limit()
    started = time.monotonic()
    result: dict[str, Any] = {"bench": "soak", "counts": counts}
    with tempfile.TemporaryDirectory(prefix="asyncinfer-soak-") as scratch:
        folder = Path(scratch)
        repository = reliability.small_repository(folder / "models")
        logs = folder / "logs"
        server = reliability.serve(repository, logs, ready_models=("simple", "mlp_onnx"))
        try:
            result["bad_input"] = reliability.bad_inputs(server, fuzz_count=counts["fuzz"])
            for name, request in (
                ("simple", reliability.simple_request()),
                ("mlp_onnx", reliability.mlp_request()),
            ):
                result[f"overload_{name}"] = reliability.overload(
                    server, request, measure_s=3.0, overload_s=counts["overload_s"]
                )
            result["idle_clients"] = reliability.idle_clients(
                server, connections=counts["connections"], streams=counts["streams"]
            )
            result["cancellations"] = reliability.cancellations(
                server, count=counts["cancellations"]
            )
            result["server_alive"] = server.process.poll() is None
        finally:
            server.stop()
        explicit = reliability.serve(
            repository, logs, name="explicit", explicit=True, ready_models=()
        )
        try:
            result["load_unload"] = reliability.load_unload(explicit, cycles=counts["cycles"])
        finally:
            explicit.stop()
        workers = reliability.serve(repository, logs, name="workers", workers=2)
        try:
            result["worker_kill"] = reliability.worker_kill(
                workers, concurrency=16, seconds=counts["kill_s"]
            )
        finally:
            workers.stop()
    result["wall_s"] = round(time.monotonic() - started, 1)
    emit(result)


if __name__ == "__main__":
    main()
