"""Tracing with OpenTelemetry: Triton's trace settings (``--trace-config``, TraceSetting), the
spans of calls, inference requests, ensemble steps, in-process and downstream calls, and W3C
trace context read from callers and carried on. See docs/observability.md.

Front ends call ``Tracing.start_call`` / ``start_request`` with the caller's headers
(``extract`` reads ``traceparent`` from any ``Mapping[str, str]``; ``metadata_headers`` picks it
out of gRPC metadata); code inside a traced call makes children with ``child``.
"""

from __future__ import annotations

from .trace_settings import DEFAULT_URL, LEVELS, TraceConfig, TraceSettings
from .tracer import (
    ActiveSpan,
    Tracing,
    child,
    current_span,
    extract,
    inject,
    metadata_headers,
    record_timing,
    tensor_attributes,
    wall_ns,
)

__all__ = [
    "DEFAULT_URL",
    "LEVELS",
    "ActiveSpan",
    "TraceConfig",
    "TraceSettings",
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
