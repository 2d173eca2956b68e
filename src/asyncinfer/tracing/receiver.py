"""An OTLP/HTTP trace receiver for tests and benchmarks: an aiohttp server on 127.0.0.1 (port
chosen at run time) on its own loop thread, decoding what OpenTelemetry's exporter posts to
``/v1/traces`` with the collector's protobuf messages (opentelemetry-proto, which the ``otlp``
extra brings), and a printer of span trees.

    with OtlpReceiver() as receiver:            # serve with --trace-config opentelemetry,url=...
        ...                                      # receiver.url
        receiver.wait_for(lambda spans: len(spans) >= 5)
        print("\n".join(tree_lines(receiver.spans)))
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from typing import Self

from aiohttp import web

from .._threads import LoopThread
from ..errors import UsageError

__all__ = ["OtlpReceiver", "ReceivedSpan", "tree_lines"]

KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


@dataclasses.dataclass(frozen=True)
class ReceivedSpan:
    """One span as the receiver got it: its service.name, name, kind, ids and times."""

    service: str
    name: str
    kind: str
    trace_id: bytes
    span_id: bytes
    parent_id: bytes
    start_ns: int
    end_ns: int

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


class OtlpReceiver:
    """``url`` is where exporters post; ``spans`` what arrived so far."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self._thread: LoopThread | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _receive(self, request: web.Request) -> web.Response:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        export = ExportTraceServiceRequest.FromString(await request.read())
        received: list[ReceivedSpan] = []
        for resource_spans in export.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                received.extend(
                    ReceivedSpan(
                        attributes.get("service.name", ""),
                        span.name,
                        KINDS.get(span.kind, str(span.kind)),
                        span.trace_id,
                        span.span_id,
                        span.parent_span_id,
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                    )
                    for span in scope.spans
                )
        with self._lock:
            self.spans.extend(received)
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/traces", self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/v1/traces"

    def wait_for(self, done: Callable[[list[ReceivedSpan]], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if done(list(self.spans)):
                    return
            time.sleep(0.05)
        raise AssertionError(f"spans not received in {timeout}s; got {self.spans}")

    def __enter__(self) -> Self:
        try:
            import opentelemetry.proto  # noqa: F401 (checked here, used per request)
        except ImportError:
            raise UsageError(
                "OtlpReceiver needs opentelemetry-proto: pip install 'asyncinfer[otlp]'"
            ) from None
        self._thread = LoopThread("otlp-receiver")
        self.url = self._thread.run(self._start(), 10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._runner is not None:
            thread.run(self._runner.cleanup(), 10)
        thread.close()


def tree_lines(spans: Sequence[ReceivedSpan]) -> list[str]:
    """The spans as an indented tree (children by start time) with their durations."""
    ids = {span.span_id for span in spans}
    roots = [span for span in spans if span.parent_id not in ids]
    lines: list[str] = []

    def add(span: ReceivedSpan, depth: int) -> None:
        lines.append(
            f"{'  ' * depth}{span.name} [{span.kind}, {span.service}] {span.duration_ms:.3f} ms"
        )
        for child in sorted(
            (s for s in spans if s.parent_id == span.span_id), key=lambda s: s.start_ns
        ):
            add(child, depth + 1)

    for root in sorted(roots, key=lambda s: s.start_ns):
        add(root, 0)
    return lines
