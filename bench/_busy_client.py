"""Load client of bench/python_instances.py: keeps N requests in flight to one `busy` model.

tritonclient's asyncio client, a separate process. Every reply is checked against the
arithmetic the model must do, so a model that skipped its work cannot win. Last stdout line:
one JSON object with throughput, p50/p99 latency and errors.

Run: python bench/_busy_client.py --url 127.0.0.1:PORT --model busy_process --iterations N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import numpy as np
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException

MODULUS = 1_000_003


def busy(x: int, iterations: int) -> int:
    """The model's work (bench/python_instances.py writes the same loop into model.py)."""
    acc = 0
    for i in range(iterations):
        acc = (acc + i * x) % MODULUS
    return acc


async def run(args: argparse.Namespace) -> dict[str, object]:
    x = 7
    expected = busy(x, args.iterations)
    tensor = aioclient.InferInput("IN", [1], "INT32")
    tensor.set_data_from_numpy(np.array([x], np.int32))
    latencies: list[float] = []
    errors: list[str] = []
    async with aioclient.InferenceServerClient(args.url) as client:
        begin = time.perf_counter() + args.warmup
        end = begin + args.duration

        async def worker() -> None:
            while (start := time.perf_counter()) < end:
                try:
                    result = await client.infer(args.model, [tensor], client_timeout=30.0)
                except InferenceServerException as exc:
                    errors.append(f"{exc.status()}: {exc.message()}")
                    continue
                if int(result.as_numpy("OUT")[0]) != expected:
                    errors.append("wrong result")
                if start >= begin:
                    latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - begin
    ms = sorted(x * 1000 for x in latencies)
    pct = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return {
        "model": args.model,
        "requests": len(ms),
        "throughput": len(ms) / elapsed,
        "p50_ms": pct[49] if ms else None,
        "p99_ms": pct[98] if ms else None,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--iterations", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    print(json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
