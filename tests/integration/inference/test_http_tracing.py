"""HTTP requests are traced as gRPC's are: one InferRequest span per sampled request, under
the caller's W3C ``traceparent`` header, collected by the SDK's in-memory exporter."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as httpclient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from asyncinfer.inference.app import build_server
from asyncinfer.server import Server
from asyncinfer.tracing import TraceConfig

from .inference_servers import REPOSITORY, ThreadedServer

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def traced() -> Iterator[tuple[ThreadedServer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()

    def factory() -> Server:
        server = build_server(
            REPOSITORY, grpc_port=0, http_port=0, model_control_mode="explicit",
            load_models=["simple"],
        )  # fmt: skip
        trace = TraceConfig(level=("TIMESTAMPS",), rate=1, exporter=exporter)
        server.config = dataclasses.replace(server.config, trace=trace)
        return server

    threaded = ThreadedServer(factory)
    with threaded:
        yield threaded, exporter


def test_an_http_request_joins_its_callers_trace(
    traced: tuple[ThreadedServer, InMemorySpanExporter],
) -> None:
    threaded, exporter = traced
    client = httpclient.InferenceServerClient(threaded.http_address)
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    inputs = [httpclient.InferInput(n, [1, 16], "INT32") for n in ("INPUT0", "INPUT1")]
    for tensor in inputs:
        tensor.set_data_from_numpy(a)
    try:
        client.infer("simple", inputs, headers={"traceparent": TRACEPARENT})
        client.infer("simple", inputs)
    finally:
        client.close()
    assert threaded.server is not None and threaded.server.tracing.flush()
    requests = [s for s in exporter.get_finished_spans() if s.name == "InferRequest"]
    assert len(requests) == 2
    joined, root = requests
    assert joined.parent is not None and joined.parent.span_id == 0x00F067AA0BA902B7
    assert joined.context is not None
    assert joined.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert joined.attributes is not None and joined.attributes["triton.model_name"] == "simple"
    assert root.parent is None
