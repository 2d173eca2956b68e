"""Services the tests run: the ping RPCs with knobs for delays, failures and held resources."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

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
from tests.protos import ping_pb2


class TrackedResources(Resources):
    """Counts tokens held by calls (a stand-in for pooled buffers) and records its life cycle."""

    def __init__(self, name: str = "tracked", log: list[str] | None = None) -> None:
        self.name = name
        self.log = log if log is not None else []
        self.held = 0
        self.entered: asyncio.Event | None = None  # created in start(), inside the loop

    async def start(self) -> None:
        self.entered = asyncio.Event()
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")

    def statistics(self) -> dict[str, int]:
        return {"held": self.held}


class Ping(UnaryContext[ping_pb2.PingRequest, ping_pb2.PingReply, TrackedResources]):
    """payload b"raise" raises a plain exception, b"invalid" an InvalidArgument; delay_us holds
    a token for that long."""

    method = rpc_method(ping_pb2, "Ping", "Ping")

    async def execute(self, request: ping_pb2.PingRequest) -> ping_pb2.PingReply:
        if request.payload == b"raise":
            raise RuntimeError("secret detail that must not reach the client")
        if request.payload == b"invalid":
            raise InvalidArgument("payload 'invalid' is not accepted; send anything else")
        self.resources.held += 1
        try:
            assert self.resources.entered is not None
            self.resources.entered.set()
            if request.delay_us:
                await asyncio.sleep(request.delay_us / 1e6)
        finally:
            self.resources.held -= 1
        return ping_pb2.PingReply(payload=request.payload)


class Countdown(
    ServerStreamContext[ping_pb2.CountdownRequest, ping_pb2.PingReply, TrackedResources]
):
    method = rpc_method(ping_pb2, "Ping", "Countdown")

    async def execute(
        self, request: ping_pb2.CountdownRequest
    ) -> AsyncIterator[ping_pb2.PingReply]:
        self.resources.held += 1
        try:
            for i in range(request.count, 0, -1):
                if request.interval_us:
                    await asyncio.sleep(request.interval_us / 1e6)
                yield ping_pb2.PingReply(payload=str(i).encode())
        finally:
            self.resources.held -= 1


class Collect(ClientStreamContext[ping_pb2.PingRequest, ping_pb2.CollectReply, TrackedResources]):
    method = rpc_method(ping_pb2, "Ping", "Collect")

    async def execute(self, requests: AsyncIterator[ping_pb2.PingRequest]) -> ping_pb2.CollectReply:
        messages = size = 0
        async for request in requests:
            messages += 1
            size += len(request.payload)
        return ping_pb2.CollectReply(messages=messages, payload_bytes=size)


class Echo(BidiStreamContext[ping_pb2.PingRequest, ping_pb2.PingReply, TrackedResources]):
    method = rpc_method(ping_pb2, "Ping", "Echo")

    async def execute(
        self, requests: AsyncIterator[ping_pb2.PingRequest]
    ) -> AsyncIterator[ping_pb2.PingReply]:
        async for request in requests:
            yield ping_pb2.PingReply(payload=request.payload)


def build(resources: TrackedResources | None = None, **config: object) -> Server:
    server = Server(**config)  # type: ignore[arg-type]
    server.add_service(resources or TrackedResources(), Ping, Countdown, Collect, Echo)
    return server


def _other_service_file() -> object:
    """A second gRPC service, defined at run time, reusing the ping messages."""
    from google.protobuf import descriptor_pb2, descriptor_pool

    proto = descriptor_pb2.FileDescriptorProto(
        name="tests/other.proto",
        package="tests",
        syntax="proto3",
        dependency=[ping_pb2.DESCRIPTOR.name],
    )
    service = proto.service.add(name="Other")
    service.method.add(
        name="Echo",
        input_type=".asyncinfer.examples.PingRequest",
        output_type=".asyncinfer.examples.PingReply",
        client_streaming=True,
        server_streaming=True,
    )
    pool = descriptor_pool.Default()
    try:
        return pool.FindFileByName(proto.name)
    except KeyError:
        pool.Add(proto)
        return pool.FindFileByName(proto.name)


class OtherEcho(Echo):
    """The Echo context, serving the run-time service tests.Other."""

    method = _other_service_file().services_by_name["Other"].methods_by_name["Echo"]  # type: ignore[attr-defined]
