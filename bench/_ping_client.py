"""The load client of bench/ping.py, bench/workers.py and bench/scale_out.py, run as its own
process: closed-loop unary calls (pings, or ModelInfer of the `simple` model with --rpc infer) at
a fixed concurrency over one or more channels, bounded by time; prints one JSON line with calls/s
and latency percentiles. TARGET may list several servers (comma-separated: round-robin)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import numpy as np
from google.protobuf.message import Message

from asyncinfer.client import AsyncClient, Method
from asyncinfer.client.channel import OWN_CONNECTION
from asyncinfer.pb import ping_pb2
from asyncinfer.pb.inference import grpc_service_pb2

PING = Method.of(ping_pb2.DESCRIPTOR.services_by_name["Ping"].methods_by_name["Ping"])
INFER = Method.of(
    grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods_by_name[
        "ModelInfer"
    ]
)


def _call(rpc: str) -> tuple[Method, Message]:
    if rpc == "ping":
        return PING, ping_pb2.PingRequest(payload=b"x" * 64)
    request = grpc_service_pb2.ModelInferRequest(model_name="simple")
    for name in ("INPUT0", "INPUT1"):
        request.inputs.add(name=name, datatype="INT32", shape=[1, 16])
        request.raw_input_contents.append(np.arange(16, dtype=np.int32).tobytes())
    return INFER, request


async def run(
    target: str, concurrency: int, seconds: float, channels: int, warmup: float, rpc: str = "ping"
) -> dict[str, float]:
    method, request = _call(rpc)
    clients = [AsyncClient(target, method, options=OWN_CONNECTION) for _ in range(channels)]
    latencies: list[float] = []
    errors = total = 0
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds

    async def caller(client: AsyncClient) -> None:
        nonlocal errors, total
        while (now := time.perf_counter()) < stop_at:
            total += 1
            try:
                await client.call(request)
            except Exception:  # counted, never hidden
                errors += 1
                continue
            if now >= measure_from:
                latencies.append(time.perf_counter() - now)

    async with asyncio.TaskGroup() as group:
        for i in range(concurrency):
            group.create_task(caller(clients[i % channels]))
    for client in clients:
        await client.close()
    p50, p99 = (np.percentile(latencies, [50, 99]) * 1e3) if latencies else (0.0, 0.0)
    return {
        "throughput": len(latencies) / seconds,
        "p50_ms": float(p50),
        "p99_ms": float(p99),
        "errors": errors,
        "calls_total": total,  # warm-up included: what the server did while it was measured
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--rpc", choices=("ping", "infer"), default="ping")
    a = parser.parse_args()
    result = run(a.target, a.concurrency, a.seconds, a.channels, a.warmup, a.rpc)
    print(json.dumps(asyncio.run(result)))
