"""Spans: a server's OpenTelemetry tracer, the spans of calls and inference requests it decides
to trace, the child spans that follow a traced call, and W3C trace context in and out.

Two kinds of decision:

- A *root* span (a Context RPC's span, an inference request's span at a front end) is made
  when the trace settings sample the call (``Tracing.start_call`` / ``start_request``), under
  the caller's ``traceparent`` when it sent one.
- A *child* span (an ensemble step, an in-process model call, a downstream ``ChannelPool``
  call, the queue and compute phases of a request) is made only inside a traced span: the
  current OpenTelemetry context carries the span and the Tracing that made it (``child``).

When nothing is traced no span object is made: the root decisions read one attribute
(``TraceSettings.active``) and a child decision one context lookup.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..errors import ConfigError, FailedPrecondition, RpcError
from .trace_settings import TraceConfig, TraceSettings

__all__ = [
    "ActiveSpan",
    "Tracing",
    "child",
    "current_span",
    "extract",
    "inject",
    "metadata_headers",
    "record_timing",
    "tensor_attributes",
    "wall_ns",
]

log = logging.getLogger("asyncinfer.tracing")

_PROPAGATOR = TraceContextTextMapPropagator()
_HEADERS = frozenset(_PROPAGATOR.fields)  # traceparent, tracestate
_TRACING_KEY = otel_context.create_key("asyncinfer-tracing")
#: perf_counter_ns() + this = time_ns(): RequestTiming's clock to OpenTelemetry's.
_EPOCH_OFFSET_NS = time.time_ns() - time.perf_counter_ns()
#: A request's phases from its RequestTiming: (span name, start attribute, end attribute).
_PHASES = (
    ("compute_input", "start_ns", "queue_start_ns"),
    ("queue", "queue_start_ns", "compute_start_ns"),
    ("compute_infer", "compute_start_ns", "compute_end_ns"),
    ("compute_output", "compute_end_ns", "end_ns"),
)
#: Triton's timestamp names, as events on a request's span.
_EVENTS = (
    ("REQUEST_START", "start_ns"),
    ("QUEUE_START", "queue_start_ns"),
    ("COMPUTE_START", "compute_start_ns"),
    ("COMPUTE_END", "compute_end_ns"),
    ("REQUEST_END", "end_ns"),
)


def extract(headers: Mapping[str, str]) -> otel_context.Context:
    """The W3C trace context (``traceparent``, ``tracestate``) a caller sent in ``headers``
    (HTTP headers, or gRPC metadata through ``metadata_headers``); empty when none."""
    return _PROPAGATOR.extract(headers)


def inject(span: Span) -> list[tuple[str, str]]:
    """The ``traceparent`` (and ``tracestate``) headers that make ``span`` the parent of a
    downstream call."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return list(carrier.items())


def metadata_headers(metadata: Iterable[tuple[str, str | bytes]]) -> dict[str, str]:
    """The trace-context entries of gRPC invocation metadata, as headers for ``extract``."""
    return {
        key: value if isinstance(value, str) else value.decode("latin-1")
        for key, value in metadata
        if key in _HEADERS
    }


def wall_ns(perf_ns: int) -> int:
    """A ``time.perf_counter_ns()`` reading as OpenTelemetry's epoch nanoseconds."""
    return perf_ns + _EPOCH_OFFSET_NS


def now_ns() -> int:
    """Now, on the clock every span of this module is dated by: perf_counter_ns() (which the
    requests' RequestTiming reads) as epoch nanoseconds, so that phases and spans line up."""
    return time.perf_counter_ns() + _EPOCH_OFFSET_NS


def current_span() -> Span:
    """The span of the code running now (a non-recording one outside any traced call)."""
    return trace.get_current_span()


class ActiveSpan:
    """A span made current for the code it covers; ``finish`` ends it and restores the
    previous context. Finish it in the task (or generator) that made it."""

    __slots__ = ("_token", "_tracer", "span")

    def __init__(self, span: Span, tracing: Tracing, parent: otel_context.Context | None) -> None:
        self.span = span
        self._tracer = tracing.tracer
        context = trace.set_span_in_context(span, parent)
        self._token = otel_context.attach(otel_context.set_value(_TRACING_KEY, tracing, context))

    def finish(self, error: BaseException | None = None, timing: Any = None) -> None:
        """End the span: marked failed by ``error``, with the phases of ``timing`` (a
        RequestTiming) as child spans and Triton's timestamps as events."""
        span = self.span
        try:
            if timing is not None and self._tracer is not None:
                record_timing(self._tracer, span, timing)
            if error is not None:
                _mark_failed(span, error)
            span.end(end_time=now_ns())
        finally:
            # A stream closed from another context (its consumer went away) cannot restore
            # this one; the context it runs in ends with it, so nothing is left attached.
            with contextlib.suppress(ValueError, RuntimeError):
                otel_context.detach(self._token)


def _mark_failed(span: Span, error: BaseException) -> None:
    if isinstance(error, RpcError):
        span.set_attribute("rpc.grpc.status_code", error.code.value[0])
        span.set_status(Status(StatusCode.ERROR, f"{error.code.name}: {error.message}"))
    else:
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))


def record_timing(tracer: trace.Tracer, span: Span, timing: Any) -> None:
    """The queue and compute phases of a request (its RequestTiming) as children of
    ``span``, and Triton's timestamps as its events; phases not reached are left out."""
    parent = trace.set_span_in_context(span)
    for name, attribute in _EVENTS:
        stamp = getattr(timing, attribute)
        if stamp:
            span.add_event(name, timestamp=wall_ns(stamp))
    for name, start_attribute, end_attribute in _PHASES:
        start, end = getattr(timing, start_attribute), getattr(timing, end_attribute)
        if name == "queue" and not start:
            continue
        if name == "compute_infer" and not start:
            start = timing.queue_start_ns  # no queue: computed at once
        if start and end and end >= start:
            phase = tracer.start_span(name, context=parent, start_time=wall_ns(start))
            phase.end(end_time=wall_ns(end))


def _tracing_of_current() -> Tracing | None:
    value = otel_context.get_value(_TRACING_KEY)
    return value if isinstance(value, Tracing) else None


def child(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
) -> ActiveSpan | None:
    """A child of the current span when the code runs inside a traced call; None otherwise
    (and then nothing is made)."""
    tracing = _tracing_of_current()
    if tracing is None or tracing.tracer is None:
        return None
    parent = trace.get_current_span()
    if not parent.is_recording():
        return None
    span = tracing.tracer.start_span(name, kind=kind, attributes=attributes, start_time=now_ns())
    return ActiveSpan(span, tracing, None)


class Tracing:
    """One server's tracing: its TraceSettings and the OpenTelemetry provider spans go
    through (made the first time tracing is on; exported in the background by the SDK's
    BatchSpanProcessor)."""

    def __init__(self) -> None:
        self.settings = TraceSettings()
        self.settings.on_enable(self._provide)
        self._config = TraceConfig()
        self._provider: TracerProvider | None = None
        self.tracer: trace.Tracer | None = None

    @property
    def active(self) -> bool:
        return self.settings.active

    def configure(self, config: TraceConfig, *, workers: int = 1) -> None:
        """Start with ``config`` (at server start): settings reset, exporter made if on."""
        self._config = config
        self.settings.reset(config, workers=workers)
        if config.enabled:
            try:
                self._provide()
            except FailedPrecondition as exc:
                raise ConfigError(exc.message) from None

    def _provide(self) -> None:
        if self.tracer is not None:
            return
        config = self._config
        exporter = config.exporter if config.exporter is not None else _otlp_exporter(config.url)
        attributes: dict[str, str] = {"service.name": "asyncinfer"}
        attributes.update(config.resource)
        provider = TracerProvider(resource=Resource.create(attributes))
        batch = dict(config.batch)
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=batch.get("bsp_max_queue_size"),
                schedule_delay_millis=batch.get("bsp_schedule_delay"),
                max_export_batch_size=batch.get("bsp_max_export_batch_size"),
            )
        )
        self._provider = provider
        self.tracer = provider.get_tracer("asyncinfer")

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Export every ended span now (blocking); True when all went out in time."""
        if self._provider is None:
            return True
        return self._provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        """Export what is left and stop the exporter (blocking: run it off the loop)."""
        provider, self._provider, self.tracer = self._provider, None, None
        if provider is not None:
            provider.shutdown()

    # ------------------------------------------------------------------ root spans

    def start_call(
        self,
        name: str,
        headers: Mapping[str, str],
        *,
        start_ns: int = 0,
        attributes: Mapping[str, Any] | None = None,
    ) -> ActiveSpan | None:
        """The span of one call (a Context RPC, an HTTP request) when the server's settings
        sample it; ``start_ns`` (perf_counter_ns) dates it from when the call arrived."""
        return self._root(name, headers, "", start_ns, attributes)

    def start_request(
        self,
        model: str,
        version: str,
        headers: Mapping[str, str],
        *,
        request_id: str = "",
        inputs: Sequence[Any] = (),
    ) -> ActiveSpan | None:
        """The span of one inference request of ``model`` at a front end, when the model's
        settings (its own, or the server's) sample it. ``inputs`` (name, datatype, shape)
        are recorded at trace level TENSORS."""
        attributes: dict[str, Any] = {"triton.model_name": model, "triton.model_version": version}
        if request_id:
            attributes["triton.request_id"] = request_id
        active = self._root("InferRequest", headers, model, 0, attributes)
        if active is not None and inputs and "TENSORS" in self.settings.levels(model):
            tensor_attributes(active.span, "input", inputs)
        return active

    def _root(
        self,
        name: str,
        headers: Mapping[str, str],
        model: str,
        start_ns: int,
        attributes: Mapping[str, Any] | None,
    ) -> ActiveSpan | None:
        parent = extract(headers) if headers else None
        caller = trace.get_current_span(parent).get_span_context() if parent else None
        sampled = caller.trace_flags.sampled if caller is not None and caller.is_valid else None
        if not self.settings.sample(model, sampled) or self.tracer is None:
            return None
        span = self.tracer.start_span(
            name,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            start_time=wall_ns(start_ns) if start_ns else now_ns(),
        )
        return ActiveSpan(span, self, parent)


def tensor_attributes(span: Span, kind: str, tensors: Iterable[Any]) -> None:
    """``input.NAME`` / ``output.NAME`` = ``DATATYPE [shape]`` (trace level TENSORS)."""
    for tensor in tensors:
        shape = ",".join(str(int(d)) for d in tensor.shape)
        span.set_attribute(f"{kind}.{tensor.name}", f"{tensor.datatype} [{shape}]")


def _otlp_exporter(url: str) -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        message = (
            "tracing exports over OTLP/HTTP, which needs the 'otlp' extra: "
            "pip install 'asyncinfer[otlp]' (opentelemetry-exporter-otlp-proto-http)"
        )
        raise FailedPrecondition(message) from ConfigError(message)
    return OTLPSpanExporter(endpoint=url)
