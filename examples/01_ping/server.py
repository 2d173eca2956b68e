"""Example 01: a ping service with one RPC of each call shape, built from Contexts.

Run it:   python examples/01_ping/server.py --port 50051 [--workers 2]
Load it:  python examples/01_ping/client.py 127.0.0.1:50051
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import asyncinfer
from asyncinfer import (
    BidiStreamContext,
    ClientStreamContext,
    Resources,
    Server,
    ServerStreamContext,
    UnaryContext,
    rpc_method,
)
from asyncinfer.errors import InvalidArgument
from asyncinfer.tracing import TraceConfig

if TYPE_CHECKING:  # typed stubs: python -m asyncinfer.protos stubs (docs/services.md)
    import ping_pb2
else:  # ping.proto beside this file, compiled at run time into asyncinfer's proto cache
    ping_pb2 = asyncinfer.protos.load(Path(__file__).with_name("ping.proto"))

MAX_COUNTDOWN = 10_000


class PingResources(Resources):
    """Shared by every call: the worker's pid and a reply counter."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._sequence = itertools.count()

    def reply(self, payload: bytes) -> ping_pb2.PingReply:
        return ping_pb2.PingReply(payload=payload, pid=self.pid, sequence=next(self._sequence))


async def _delay(microseconds: int) -> None:
    if microseconds:
        await asyncio.sleep(microseconds / 1e6)


class Ping(UnaryContext[ping_pb2.PingRequest, ping_pb2.PingReply, PingResources]):
    method = rpc_method(ping_pb2, "Ping", "Ping")
    max_in_flight = 1024

    async def execute(self, request: ping_pb2.PingRequest) -> ping_pb2.PingReply:
        await _delay(request.delay_us)
        return self.resources.reply(request.payload)


class Countdown(ServerStreamContext[ping_pb2.CountdownRequest, ping_pb2.PingReply, PingResources]):
    method = rpc_method(ping_pb2, "Ping", "Countdown")
    max_in_flight = 64

    async def execute(
        self, request: ping_pb2.CountdownRequest
    ) -> AsyncIterator[ping_pb2.PingReply]:
        if request.count > MAX_COUNTDOWN:
            raise InvalidArgument(f"count is {request.count}; at most {MAX_COUNTDOWN} replies")
        for remaining in range(request.count, 0, -1):
            await _delay(request.interval_us)
            yield self.resources.reply(str(remaining).encode())


class Collect(ClientStreamContext[ping_pb2.PingRequest, ping_pb2.CollectReply, PingResources]):
    method = rpc_method(ping_pb2, "Ping", "Collect")
    max_in_flight = 64

    async def execute(self, requests: AsyncIterator[ping_pb2.PingRequest]) -> ping_pb2.CollectReply:
        messages = payload_bytes = 0
        async for request in requests:
            messages += 1
            payload_bytes += len(request.payload)
        return ping_pb2.CollectReply(
            messages=messages, payload_bytes=payload_bytes, pid=self.resources.pid
        )


class Echo(BidiStreamContext[ping_pb2.PingRequest, ping_pb2.PingReply, PingResources]):
    method = rpc_method(ping_pb2, "Ping", "Echo")
    max_in_flight = 64

    async def execute(
        self, requests: AsyncIterator[ping_pb2.PingRequest]
    ) -> AsyncIterator[ping_pb2.PingReply]:
        async for request in requests:
            await _delay(request.delay_us)
            yield self.resources.reply(request.payload)


def build(
    host: str = "127.0.0.1",
    port: int = 0,
    workers: int = 1,
    pin_workers: bool = False,
    trace: TraceConfig | None = None,
) -> Server:
    """The server factory; each worker process calls it to build its own server."""
    server = Server(
        host=host,
        port=port,
        workers=workers,
        reuse_port=workers > 1,
        pin_workers=pin_workers,
        trace=trace or TraceConfig(),
    )
    server.add_service(PingResources(), Ping, Countdown, Collect, Echo)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051, help="0 picks a free port")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pin-workers", action="store_true", help="pin workers per NUMA node")
    parser.add_argument(
        "--trace-config",
        action="append",
        default=[],
        metavar="[MODE,]SETTING=VALUE",
        help="tracing, as `asyncinfer serve --trace-config` (repeatable)",
    )
    args = parser.parse_args(argv)
    trace = TraceConfig.parse(args.trace_config)
    factory = functools.partial(build, args.host, args.port, args.workers, args.pin_workers, trace)
    return asyncinfer.serve(factory)


if __name__ == "__main__":
    raise SystemExit(main())
