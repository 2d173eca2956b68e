"""Example 01 client: drive the ping service with the sync, async and siege clients.

python examples/01_ping/client.py 127.0.0.1:50051 --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import asyncinfer
from asyncinfer.client import AsyncClient, Constant, Method, Report, Siege, SyncClient

if TYPE_CHECKING:
    import ping_pb2
else:
    ping_pb2 = asyncinfer.protos.load(Path(__file__).with_name("ping.proto"))

PING = Method.of(asyncinfer.rpc_method(ping_pb2, "Ping", "Ping"))
REQUEST = ping_pb2.PingRequest(payload=b"x" * 64)


def run_sync(target: str, seconds: float) -> Report:
    with SyncClient(target, PING) as client:
        return client.run(REQUEST, duration=seconds)


async def run_async(target: str, seconds: float, concurrency: int = 16) -> Report:
    async with AsyncClient(target, PING) as client:
        return await client.run(REQUEST, concurrency=concurrency, duration=seconds)


async def run_siege(target: str, seconds: float, rate: float = 1500) -> Report:
    async with AsyncClient(target, PING) as client:
        siege = Siege(client, Constant(rate), duration=seconds, max_in_flight=512)
        result = await siege.run(REQUEST)
    return result.report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="HOST:PORT of the ping server")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    reports = [
        run_sync(args.target, args.seconds),
        asyncio.run(run_async(args.target, args.seconds)),
        asyncio.run(run_siege(args.target, args.seconds)),
    ]
    for report in reports:
        print(report.line())
    return 0 if all(r.ok and not r.failed for r in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())
