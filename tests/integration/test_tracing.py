"""Spans of Context RPCs on a real server, collected by the SDK's in-memory exporter: a plain
call (under its caller's traceparent, with attributes a Context added to ``self.call.span``), a
failed call, a server stream, a glue Context whose ChannelPool call joins the callee's span to
its trace; and no spans at all while tracing is off."""

from __future__ import annotations

import dataclasses

import grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from asyncinfer import Resources, Server, UnaryContext, rpc_method
from asyncinfer.client import AsyncClient, ChannelPool, Method
from asyncinfer.errors import InvalidArgument
from asyncinfer.testing import running
from asyncinfer.tracing import TraceConfig
from tests import services
from tests.protos import ping_pb2

PING = Method.of(services.Ping)
COUNTDOWN = Method.of(services.Countdown)
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
TRACEPARENT = f"00-{TRACE_ID:032x}-b7ad6b7169203331-01"


def traced(server: Server, exporter: InMemorySpanExporter, **settings: object) -> Server:
    trace = TraceConfig(level=("TIMESTAMPS",), rate=1, exporter=exporter, **settings)  # type: ignore[arg-type]
    server.config = dataclasses.replace(server.config, trace=trace)
    return server


class Annotated(UnaryContext[ping_pb2.PingRequest, ping_pb2.PingReply, Resources]):
    """Adds an attribute and an event to its call's span."""

    method = rpc_method(ping_pb2, "Ping", "Ping")

    async def execute(self, request: ping_pb2.PingRequest) -> ping_pb2.PingReply:
        self.call.span.set_attribute("ping.payload_bytes", len(request.payload))
        self.call.span.add_event("payload read")
        if request.payload == b"invalid":
            raise InvalidArgument("payload 'invalid' is not accepted")
        return ping_pb2.PingReply(payload=request.payload)


async def call_ping(address: str, payload: bytes, metadata: tuple[tuple[str, str], ...]) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        ping = channel.unary_unary(
            PING.path,
            request_serializer=ping_pb2.PingRequest.SerializeToString,
            response_deserializer=ping_pb2.PingReply.FromString,
        )
        try:
            await ping(ping_pb2.PingRequest(payload=payload), metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_context_call_has_a_span_under_its_callers_traceparent() -> None:
    exporter = InMemorySpanExporter()
    server = Server()
    server.add_service(Resources(), Annotated)
    async with running(traced(server, exporter)) as address:
        await call_ping(address, b"hello", (("traceparent", TRACEPARENT),))
        await call_ping(address, b"invalid", ())
    ok, failed = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)
    assert ok.name == "asyncinfer.examples.Ping/Ping" and ok.kind == SpanKind.SERVER
    assert ok.context is not None and ok.context.trace_id == TRACE_ID
    assert ok.parent is not None and ok.parent.span_id == 0xB7AD6B7169203331
    assert ok.attributes is not None and ok.attributes["ping.payload_bytes"] == 5
    assert ok.attributes["rpc.system"] == "grpc" and ok.attributes["rpc.method"] == "Ping"
    assert [event.name for event in ok.events] == ["payload read"]
    assert ok.start_time is not None and ok.end_time is not None
    assert ok.start_time <= ok.events[0].timestamp <= ok.end_time
    assert failed.parent is None  # no traceparent: a trace of its own
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]


async def test_a_server_stream_has_one_span_for_the_call() -> None:
    exporter = InMemorySpanExporter()
    async with (
        running(traced(services.build(), exporter)) as address,
        AsyncClient(address, COUNTDOWN) as client,
    ):
        replies = await client.call(ping_pb2.CountdownRequest(count=3))
    assert len(replies) == 3
    (span,) = exporter.get_finished_spans()
    assert span.name == "asyncinfer.examples.Ping/Countdown"
    assert span.status.status_code == StatusCode.UNSET


class GlueResources(Resources):
    def __init__(self, target: str) -> None:
        self.pool = ChannelPool(target, size=1)

    async def start(self) -> None:
        await self.pool.open()

    async def stop(self) -> None:
        await self.pool.close()


class Forward(UnaryContext[ping_pb2.PingRequest, ping_pb2.PingReply, GlueResources]):
    """Forwards the ping downstream through the pool (a one-hop glue)."""

    method = rpc_method(ping_pb2, "Ping", "Ping")

    async def execute(self, request: ping_pb2.PingRequest) -> ping_pb2.PingReply:
        reply: ping_pb2.PingReply = await self.resources.pool.call(
            PING, request, timeout=self.call.time_remaining()
        )
        return reply


async def test_a_channel_pool_call_carries_the_trace_downstream() -> None:
    # One exporter per server: a server's stop shuts its exporter down.
    exporters = InMemorySpanExporter(), InMemorySpanExporter()
    async with running(traced(services.build(), exporters[0])) as downstream:
        glue = Server()
        glue.add_service(GlueResources(downstream), Forward)
        async with running(traced(glue, exporters[1])) as address:
            await call_ping(address, b"hop", ())
    spans = [*exporters[0].get_finished_spans(), *exporters[1].get_finished_spans()]
    assert len(spans) == 3
    (glue_span,) = [s for s in spans if s.kind == SpanKind.SERVER and s.parent is None]
    (client_span,) = [s for s in spans if s.kind == SpanKind.CLIENT]
    served = [s for s in spans if s.kind == SpanKind.SERVER and s.parent is not None]
    assert len(served) == 1
    assert glue_span.context is not None and client_span.context is not None
    assert (
        client_span.parent is not None and client_span.parent.span_id == glue_span.context.span_id
    )
    assert served[0].parent is not None
    assert served[0].parent.span_id == client_span.context.span_id
    assert served[0].context is not None
    assert served[0].context.trace_id == glue_span.context.trace_id
    for outer, inner in ((glue_span, client_span), (client_span, served[0])):
        assert_within(inner, outer)


def assert_within(inner: ReadableSpan, outer: ReadableSpan) -> None:
    assert outer.start_time is not None and outer.end_time is not None
    assert inner.start_time is not None and inner.end_time is not None
    assert outer.start_time <= inner.start_time <= inner.end_time <= outer.end_time


async def test_no_span_is_made_while_tracing_is_off() -> None:
    exporter = InMemorySpanExporter()
    server = traced(services.build(), exporter)
    server.config = dataclasses.replace(
        server.config, trace=dataclasses.replace(server.config.trace, level=("OFF",))
    )
    async with running(server) as address:
        async with AsyncClient(address, PING) as client:
            for _ in range(5):
                await client.call(ping_pb2.PingRequest(payload=b"x"))
        assert server.tracing.tracer is None  # no provider was even made
        server.tracing.settings.update({"trace_level": ["TIMESTAMPS"], "trace_rate": ["1"]})
        async with AsyncClient(address, PING) as client:
            await client.call(ping_pb2.PingRequest(payload=b"x"))
    assert [s.name for s in exporter.get_finished_spans()] == ["asyncinfer.examples.Ping/Ping"]
