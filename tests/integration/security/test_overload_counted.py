"""Regression test: calls shed inside gRPC before any handler runs are counted (statistics and
metrics). On main, 29 of these 30 calls were refused by grpc.aio and appeared nowhere."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
from prometheus_client.parser import text_string_to_metric_families

from asyncinfer.pb import ping_pb2, ping_pb2_grpc
from asyncinfer.testing import running

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
        assert server.metrics_url is not None
        text = await asyncio.to_thread(
            lambda: urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
        )
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    ping = (("method", "Ping"), ("service", "asyncinfer.examples.Ping"))
    assert samples[("asyncinfer_rpc_shed_total", ping)] == shed
    assert samples[("asyncinfer_grpc_core_calls_total", (("outcome", "failed"),))] >= shed
