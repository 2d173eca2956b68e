"""Finished unary calls are freed when they end, not at the next garbage collection.

A reference cycle through a call's grpc.aio context keeps the whole call (its core call and
buffers included) alive until the cyclic collector runs, and makes those collections several
times as frequent under load: a hot-path cost that no test of behaviour sees.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from asyncinfer.testing import running
from tests.protos import ping_pb2, ping_pb2_grpc

from ..services import TrackedResources, build

CALLS = 20


@contextmanager
def _cyclic_garbage() -> Iterator[list[object]]:
    """The objects only the cyclic collector could free, made inside the block."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    found: list[object] = []
    try:
        yield found
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _servicer_contexts(objects: list[object]) -> int:
    return sum(type(obj).__name__ == "_ServicerContext" for obj in objects)


async def test_unary_calls_leave_no_reference_cycle_through_their_context() -> None:
    server = build(TrackedResources())
    async with running(server) as address, grpc.aio.insecure_channel(address) as channel:
        stub = ping_pb2_grpc.PingStub(channel)
        await stub.Ping(ping_pb2.PingRequest(payload=b"warm"))
        with _cyclic_garbage() as garbage:
            for index in range(CALLS):
                reply = await stub.Ping(ping_pb2.PingRequest(payload=bytes([index])))
                assert reply.payload == bytes([index])
            await asyncio.sleep(0.05)  # the calls' tasks finish after their replies
        assert _servicer_contexts(garbage) == 0
        # The unsent-reply bytes every call held were given back when it ended.
        assert server.limits is not None and server.limits.unsent_replies.total == 0
