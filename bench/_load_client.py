"""The load client of the inference benchmarks: tritonclient's asyncio client at fixed concurrency.

A separate process, so that its CPU use is not the server's. For each concurrency level it keeps
exactly N requests in flight for ``--warmup`` seconds (not recorded), then for ``--duration``
seconds or ``--max-requests`` requests, whichever comes first. The first reply of every level is
checked against the expected arithmetic, so a server that answers fast but wrong cannot win.
The last stdout line is one JSON object: per level, requests, errors, throughput, latencies.

Run: python bench/_load_client.py --url 127.0.0.1:PORT --model simple --concurrency 1,16
     python bench/_load_client.py --url ... --model custom_identity_int32 --elements 1048576
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException

Check = Callable[[grpcclient.InferResult], str | None]


@dataclasses.dataclass
class Workload:
    inputs: list[grpcclient.InferInput]
    check: Check


def simple_workload(batch: int) -> Workload:
    a = np.arange(16 * batch, dtype=np.int32).reshape(batch, 16)
    b = np.full((batch, 16), 3, dtype=np.int32)
    inputs = [grpcclient.InferInput(name, [batch, 16], "INT32") for name in ("INPUT0", "INPUT1")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)

    def check(result: grpcclient.InferResult) -> str | None:
        if not np.array_equal(result.as_numpy("OUTPUT0"), a + b):
            return "OUTPUT0 is not INPUT0 + INPUT1"
        if not np.array_equal(result.as_numpy("OUTPUT1"), a - b):
            return "OUTPUT1 is not INPUT0 - INPUT1"
        return None

    return Workload(inputs, check)


def identity_workload(elements: int) -> Workload:
    data = np.random.default_rng(0).integers(-(2**31), 2**31 - 1, (1, elements), dtype=np.int32)
    tensor = grpcclient.InferInput("INPUT0", [1, elements], "INT32")
    tensor.set_data_from_numpy(data)

    def check(result: grpcclient.InferResult) -> str | None:
        if not np.array_equal(result.as_numpy("OUTPUT0"), data):
            return "OUTPUT0 differs from INPUT0"
        return None

    return Workload([tensor], check)


@dataclasses.dataclass
class Level:
    concurrency: int
    latencies: list[float] = dataclasses.field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    checked: bool = False
    sent: int = 0  # every request started, warm-up included: what the server worked on

    def error(self, text: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or text

    def summary(self, elapsed: float) -> dict[str, object]:
        ms = sorted(x * 1000 for x in self.latencies)
        pct = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
        return {
            "concurrency": self.concurrency,
            "requests": len(ms),
            "requests_total": self.sent,
            "errors": self.errors,
            "first_error": self.first_error,
            "throughput": len(ms) / elapsed if elapsed > 0 else 0.0,
            "p50_ms": pct[49] if ms else None,
            "p99_ms": pct[98] if ms else None,
            "mean_ms": statistics.fmean(ms) if ms else None,
        }


async def measure(
    client: aioclient.InferenceServerClient,
    model: str,
    workload: Workload,
    level: Level,
    *,
    warmup: float,
    duration: float,
    max_requests: int,
) -> float:
    """Run one level; returns the seconds the recorded window lasted."""
    begin = time.perf_counter() + warmup
    end = begin + duration
    last_done = begin
    issued = 0  # requests started inside the recorded window (checked before each start)

    async def worker() -> None:
        nonlocal last_done, issued
        while (now := time.perf_counter()) < end and issued < max_requests:
            issued += now >= begin
            level.sent += 1
            try:
                result = await client.infer(model, workload.inputs, client_timeout=30.0)
            except InferenceServerException as exc:
                level.error(f"{exc.status()}: {exc.message()}")
                continue
            done = time.perf_counter()
            if not level.checked:
                level.checked = True
                problem = workload.check(result)
                if problem:
                    level.error(f"wrong result: {problem}")
            if now >= begin:
                level.latencies.append(done - now)
                last_done = max(last_done, done)

    await asyncio.gather(*(worker() for _ in range(level.concurrency)))
    return last_done - begin


async def run(args: argparse.Namespace) -> dict[str, object]:
    workload = identity_workload(args.elements) if args.elements else simple_workload(args.batch)
    levels = []
    async with aioclient.InferenceServerClient(args.url) as client:
        for concurrency in args.concurrency:
            level = Level(concurrency)
            elapsed = await measure(
                client, args.model, workload, level,
                warmup=args.warmup, duration=args.duration, max_requests=args.max_requests,
            )  # fmt: skip
            levels.append(level.summary(elapsed))
    return {"url": args.url, "model": args.model, "levels": levels}


def _levels(text: str) -> list[int]:
    values = [int(x) for x in text.split(",") if x]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive integers, e.g. 1,16,64")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="HOST:PORT of the gRPC server")
    parser.add_argument("--model", default="simple")
    parser.add_argument("--concurrency", type=_levels, default=[1])
    parser.add_argument("--duration", type=float, default=2.0, help="recorded seconds per level")
    parser.add_argument("--warmup", type=float, default=0.5, help="unrecorded seconds per level")
    parser.add_argument("--max-requests", type=int, default=100_000, help="per level")
    parser.add_argument("--batch", type=int, default=1, help="batch size of `simple` requests")
    parser.add_argument(
        "--elements", type=int, default=0,
        help="send one INT32 tensor INPUT0 [1, N] to an identity model instead of `simple`",
    )  # fmt: skip
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(args))
    else:
        result = uvloop.run(run(args))
    print(json.dumps(result), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
