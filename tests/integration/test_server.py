"""A real server on 127.0.0.1 (port chosen at run time) driven by real grpc channels."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from asyncinfer import ConfigError, Server
from asyncinfer.client import AsyncClient, Method
from asyncinfer.errors import InvalidArgument, ResourceExhausted, Unknown
from asyncinfer.testing import running
from tests.protos import ping_pb2, ping_pb2_grpc

from ..services import Collect, Countdown, Echo, OtherEcho, Ping, TrackedResources, build

PingRequest = ping_pb2.PingRequest


async def test_all_four_call_shapes(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = ping_pb2_grpc.PingStub(channel)
        assert (await stub.Ping(PingRequest(payload=b"hi"))).payload == b"hi"
        replies = [r.payload async for r in stub.Countdown(ping_pb2.CountdownRequest(count=3))]
        assert replies == [b"3", b"2", b"1"]
        summary = await stub.Collect(iter([PingRequest(payload=b"ab")] * 4))
        assert (summary.messages, summary.payload_bytes) == (4, 8)
        echoed = [
            r.payload
            async for r in stub.Echo(iter(PingRequest(payload=bytes([i])) for i in range(5)))
        ]
        assert echoed == [bytes([i]) for i in range(5)]


async def test_clients_map_statuses_back_to_error_classes(target: str) -> None:
    async with AsyncClient(target, Method.of(Ping)) as client:
        with pytest.raises(InvalidArgument, match="payload 'invalid' is not accepted"):
            await client.call(PingRequest(payload=b"invalid"))


async def test_unexpected_exception_is_unknown_with_id_and_server_keeps_serving(
    target: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with AsyncClient(target, Method.of(Ping)) as client:
        with caplog.at_level(logging.ERROR), pytest.raises(Unknown) as info:
            await client.call(PingRequest(payload=b"raise"))
        assert "secret" not in info.value.message
        error_id = info.value.message.split("id=")[1].rstrip(")")
        logged = [r for r in caplog.records if error_id in r.getMessage()]
        assert len(logged) == 1 and "secret detail" in str(logged[0].exc_info[1])  # type: ignore[index]
        assert (await client.call(PingRequest(payload=b"ok"))).payload == b"ok"


async def test_unparseable_request_is_invalid_argument_naming_the_method(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        raw = channel.unary_unary("/asyncinfer.examples.Ping/Ping", None, None)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await raw(b"\xff\xff\xff\xff")
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "/asyncinfer.examples.Ping/Ping" in (info.value.details() or "")


async def test_unknown_method_is_unimplemented(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await channel.unary_unary("/asyncinfer.examples.Ping/Nope", None, None)(b"")
    assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_oversize_message_is_resource_exhausted_naming_the_limit() -> None:
    async with (
        running(build(max_receive_message_bytes=1024)) as target,
        AsyncClient(target, Method.of(Ping)) as client,
    ):
        with pytest.raises(ResourceExhausted, match="1024"):
            await client.call(PingRequest(payload=b"x" * 4096))
        assert (await client.call(PingRequest(payload=b"small"))).payload == b"small"


async def test_admission_limit_rejects_after_the_queue_timeout() -> None:
    class Limited(Ping):
        max_in_flight = 2
        queue_timeout = 0.05

    server = Server()
    resources = TrackedResources()
    server.add_service(resources, Limited)
    async with running(server) as target, AsyncClient(target, Method.of(Ping)) as client:
        slow = [asyncio.create_task(client.call(PingRequest(delay_us=500_000))) for _ in range(2)]
        while resources.held < 2:  # noqa: ASYNC110 - a counter, no event to wait on
            await asyncio.sleep(0.005)
        with pytest.raises(ResourceExhausted, match="2 calls in flight"):
            await client.call(PingRequest(payload=b"third"))
        await asyncio.gather(*slow)
        stats = server.statistics().rpcs[Limited.rpc_path()]
        assert (stats.completed, stats.rejected, stats.in_flight) == (2, 1, 0)


async def test_health_and_reflection(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "asyncinfer.examples.Ping"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    # The reflection client is blocking: run it off the loop that serves it.
    services = await asyncio.to_thread(_reflected_services, target)
    assert "asyncinfer.examples.Ping" in services


def _reflected_services(target: str) -> list[str]:
    with grpc.insecure_channel(target) as channel:
        return list(ProtoReflectionDescriptorDatabase(channel).get_services())


async def test_graceful_stop_drains_in_flight_calls_then_stops_resources_in_reverse() -> None:
    log: list[str] = []
    first, second = TrackedResources("first", log), TrackedResources("second", log)
    server = Server()
    server.add_service(first, Ping, Countdown)
    server.add_service(second, OtherEcho)
    await server.start()
    assert log == ["start first", "start second"]
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert (await health.read()).status == health_pb2.HealthCheckResponse.SERVING
        call = ping_pb2_grpc.PingStub(channel).Ping(PingRequest(payload=b"slow", delay_us=300_000))
        assert first.entered is not None
        await first.entered.wait()
        stopping = asyncio.create_task(server.stop(grace=5))
        # Watchers learn first; then the in-flight call finishes during the drain.
        assert (await health.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        health.cancel()
        assert (await call).payload == b"slow"
        await stopping
    assert log[2:] == ["stop second", "stop first"]


async def test_a_port_in_use_without_reuse_port_fails_with_advice(target: str) -> None:
    port = int(target.rsplit(":", 1)[1])
    with pytest.raises(ConfigError, match=r"cannot bind 127.0.0.1:\d+.*reuse_port=True"):
        await build(port=port).start()


def test_registration_errors_say_what_to_change() -> None:
    server = Server()
    with pytest.raises(ConfigError, match="implemented twice"):
        server.add_service(TrackedResources(), Ping, Ping)
    with pytest.raises(ConfigError, match="not a concrete Context"):
        server.add_service(TrackedResources(), object)  # type: ignore[arg-type]
    server.add_service(TrackedResources(), Ping, Collect)
    with pytest.raises(ConfigError, match="already registered"):
        server.add_service(TrackedResources(), Echo)
