"""Calls cancelled by their client or past their deadline stop, and give back what they held."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from asyncinfer import AdmissionStatistics, Server
from asyncinfer.client import AsyncClient, Method
from asyncinfer.errors import DeadlineExceeded
from asyncinfer.testing import running
from tests.protos import ping_pb2, ping_pb2_grpc

from ..services import Countdown, Ping, TrackedResources

# Cancelled in waves, each on a fresh connection: grpc core's HTTP/2 rapid-reset protection
# answers a burst of a thousand client cancellations with GOAWAY for that connection.
FRESH_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]
WAVE = 500
WAVES = 6


class LimitedPing(Ping):
    max_in_flight = 100  # so that most cancelled calls are still waiting for admission
    queue_timeout = None


async def _until(predicate: object, limit: float = 20.0) -> None:
    """Poll server counters (they have no event to wait on) until ``predicate()`` holds."""
    assert callable(predicate)
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_thousands_of_cancelled_calls_leave_every_limit_and_pool_idle() -> None:
    resources = TrackedResources()
    server = Server()
    server.add_service(resources, LimitedPing, Countdown)
    async with running(server) as target:
        for _ in range(WAVES):
            async with grpc.aio.insecure_channel(target, options=FRESH_CONNECTION) as channel:
                await _cancel_wave(server, resources, ping_pb2_grpc.PingStub(channel))
        assert server.statistics().rpcs[LimitedPing.rpc_path()].cancelled == WAVES * WAVE
        assert server.statistics().rpcs[Countdown.rpc_path()].cancelled == WAVES * 50
        # The server still serves normally afterwards.
        async with grpc.aio.insecure_channel(target) as channel:
            stub = ping_pb2_grpc.PingStub(channel)
            assert (await stub.Ping(ping_pb2.PingRequest(payload=b"alive"))).payload == b"alive"


async def _cancel_wave(
    server: Server, resources: TrackedResources, stub: ping_pb2_grpc.PingAsyncStub
) -> None:
    calls = [stub.Ping(ping_pb2.PingRequest(delay_us=30_000_000)) for _ in range(WAVE)]
    streams = [
        stub.Countdown(ping_pb2.CountdownRequest(count=1000, interval_us=1000)) for _ in range(50)
    ]

    def stats() -> AdmissionStatistics:
        return server.statistics().rpcs[LimitedPing.rpc_path()]

    await _until(lambda: stats().in_flight == 100 and stats().waiting == WAVE - 100)
    for stream in streams:
        await stream.read()  # every stream is mid-flight, holding its token
    assert resources.held == 100 + 50
    for call in [*calls, *streams]:
        call.cancel()
    await _until(lambda: server.statistics().idle and resources.held == 0)


async def test_calls_past_their_deadline_stop_and_release(resources: TrackedResources) -> None:
    server = Server()
    server.add_service(resources, Ping)
    async with (
        running(server) as target,
        AsyncClient(target, Method.of(Ping), timeout=0.05) as client,
    ):
        results = await asyncio.gather(
            *(client.call(ping_pb2.PingRequest(delay_us=5_000_000)) for _ in range(500)),
            return_exceptions=True,
        )
        assert all(isinstance(r, DeadlineExceeded) for r in results)
        await _until(lambda: server.statistics().idle and resources.held == 0)


@pytest.mark.parametrize("count", [3])
async def test_stream_closed_early_by_client_is_accounted(
    count: int, resources: TrackedResources
) -> None:
    server = Server()
    server.add_service(resources, Countdown)
    async with running(server) as target, grpc.aio.insecure_channel(target) as channel:
        stream = ping_pb2_grpc.PingStub(channel).Countdown(
            ping_pb2.CountdownRequest(count=10_000, interval_us=1000)
        )
        for _ in range(count):
            await stream.read()
        stream.cancel()
        await _until(lambda: server.statistics().idle and resources.held == 0)
        assert server.statistics().rpcs[Countdown.rpc_path()].cancelled == 1
