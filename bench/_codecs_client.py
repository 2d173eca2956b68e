"""Load client of bench/codecs.py: for one message size, each codec at each concurrency, in
the order given; client and server CPU per call and throughput per run. Last line: JSON.

    .venv/bin/python bench/_codecs_client.py 127.0.0.1:PORT --server-pid PID --size 1048576
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import numpy as np
import psutil
from _codecs_server import identity_pb2

from asyncinfer import codecs
from asyncinfer.client import AsyncClient, Method

MAX_CALLS = 200_000  # every run is bounded in count as well as time
SERVICE = identity_pb2.DESCRIPTOR.services_by_name["Identity"]
METHODS = {
    "protobuf": Method.of(SERVICE.methods_by_name["Protobuf"]),
    "flatbuffers": Method.of(SERVICE.methods_by_name["FlatBuffers"], codec=codecs.FLATBUFFERS),
    "raw": Method.of(SERVICE.methods_by_name["Raw"], codec=codecs.RAW),
}


def request(codec: str, size: int) -> Any:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    if codec == "protobuf":
        return identity_pb2.Payload(data=data.tobytes())
    if codec == "flatbuffers":
        return {"data": data}
    return data.tobytes()


def reply_size(codec: str, reply: Any) -> int:
    if codec == "protobuf":
        return len(reply.data)
    if codec == "flatbuffers":
        return int(reply["data"].nbytes)
    return len(reply)


def server_cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def one_run(target: str, codec: str, size: int, concurrency: int,
                  args: argparse.Namespace, server: psutil.Process) -> dict[str, Any]:  # fmt: skip
    message = request(codec, size)
    async with AsyncClient(target, METHODS[codec], timeout=60.0) as client:
        echoed = reply_size(codec, await client.call(message))
        if echoed != size:
            raise SystemExit(f"{codec}: the identity service returned {echoed} bytes, not {size}")
        await client.run(message, concurrency=concurrency, duration=args.warmup, count=MAX_CALLS)
        cpu, served, started = time.process_time(), server_cpu(server), time.perf_counter()
        report = await client.run(
            message, concurrency=concurrency, duration=args.duration, count=MAX_CALLS
        )
        elapsed = time.perf_counter() - started
        client_used, server_used = time.process_time() - cpu, server_cpu(server) - served
    calls = report.ok
    return {
        "codec": codec, "size": size, "concurrency": concurrency,
        "throughput": calls / elapsed if elapsed > 0 else 0.0,
        "client_cpu_us_per_call": client_used / calls * 1e6 if calls else None,
        "server_cpu_us_per_call": server_used / calls * 1e6 if calls else None,
        "p50_ms": report.p50_ms if calls else None, "errors": report.failed,
    }  # fmt: skip


async def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    server = psutil.Process(args.server_pid)
    runs = []
    for codec in args.codecs.split(","):
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            runs.append(await one_run(args.target, codec, args.size, concurrency, args, server))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--size", type=int, required=True, help="payload bytes")
    parser.add_argument("--codecs", default="protobuf,flatbuffers,raw", help="in this order")
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.3)
    args = parser.parse_args()
    print(json.dumps({"runs": asyncio.run(run_all(args))}), flush=True)


if __name__ == "__main__":
    main()
