"""Regression test: calls shed inside gRPC before any handler runs are counted (statistics and
metrics). On main, 29 of these 30 calls were refused by grpc.aio and appeared nowhere."""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

import grpc
from prometheus_client.parser import text_string_to_metric_families

from asyncinfer.testing import running
from tests.protos import ping_pb2, ping_pb2_grpc

from ...services import build


async def test_calls_shed_by_grpc_are_counted() -> None:
    server = build(max_concurrent_rpcs=1, metrics_port=0)
    async with running(server) as target, grpc.aio.insecure_channel(target) as channel:
        stub = ping_pb2_grpc.PingStub(channel)
        before = server.statistics().calls

        async def one() -> str:
            try:
                await stub.Ping(ping_pb2.PingRequest(payload=b"x", delay_us=200_000), timeout=2)
            except grpc.aio.AioRpcError as exc:
                return exc.code().name
            return "OK"

        outcomes = await asyncio.gather(*(one() for _ in range(30)))
        shed = outcomes.count("RESOURCE_EXHAUSTED")
        assert shed >= 20 and outcomes.count("OK") >= 1
        await asyncio.sleep(0.2)
        calls = server.statistics().calls
        assert calls.started is not None and before.started is not None
        assert calls.started - before.started == 30
        assert calls.reached - before.reached == 30
        assert calls.not_reached == 0  # the core passed every call on; grpc.aio shed them
        assert calls.shed["/asyncinfer.examples.Ping/Ping"] == shed
        rpc = server.statistics().rpcs["/asyncinfer.examples.Ping/Ping"]
        assert rpc.completed == 30 - shed  # the handler never saw the shed ones
        url = server.metrics_url
        assert url is not None
        text = await asyncio.to_thread(
            lambda: urllib.request.urlopen(url, timeout=10).read().decode()
        )
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    ping = (("method", "Ping"), ("service", "asyncinfer.examples.Ping"))
    assert samples[("asyncinfer_rpc_shed_total", ping)] == shed
    assert samples[("asyncinfer_grpc_core_calls_total", (("outcome", "failed"),))] >= shed


class _Refuse(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses Echo before any handler runs, as an authentication interceptor would."""

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        if handler_call_details.method.endswith("/Echo"):
            return grpc.unary_unary_rpc_method_handler(self._deny)
        return await continuation(handler_call_details)

    async def _deny(self, request: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")


async def _reach_every_kind(target: str) -> None:
    """Ping, health, reflection, a method nobody serves and (refused by _Refuse) Echo."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with grpc.aio.insecure_channel(target) as channel:
        await ping_pb2_grpc.PingStub(channel).Ping(ping_pb2.PingRequest(payload=b"x"), timeout=5)
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        async for _ in stream:
            pass
        for method in ("/nobody.Serves/This", "/asyncinfer.examples.Ping/Echo"):
            try:
                await channel.unary_unary(method, None, None)(b"", timeout=5)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() in (
                    grpc.StatusCode.UNIMPLEMENTED,
                    grpc.StatusCode.PERMISSION_DENIED,
                    grpc.StatusCode.INVALID_ARGUMENT,
                )


async def test_every_call_is_counted_with_and_without_interceptors() -> None:
    """Without interceptors the counter is the first generic handler, and health and
    reflection (registered with the core by their generated code) still pass it; with them it
    leads the chain, so a call an interceptor refuses counts as reached as well."""
    expected = {
        "/asyncinfer.examples.Ping/Ping",
        "/grpc.health.v1.Health/Check",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/nobody.Serves/This",
        "/asyncinfer.examples.Ping/Echo",
    }
    for interceptors in ((), (_Refuse(),)):
        server = build(interceptors=interceptors, reflection=True)
        async with running(server) as target:
            await _reach_every_kind(target)
            await asyncio.sleep(0.1)
            reached = dict(server._calls.reached)
            calls = server.statistics().calls
        assert set(reached) == expected, (interceptors, reached)
        assert all(count == 1 for count in reached.values()), (interceptors, reached)
        assert calls.reached == len(expected)
        if calls.started is not None:
            assert calls.not_reached == 0
