"""Example 04 traced across three processes: Model A, Model B and the glue, each exporting over
OTLP/HTTP to a receiver this test runs. One call to the glue is one trace: the glue's span, its
two downstream client spans, and under each the callee's own span in the callee's process."""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest

from asyncinfer.client import Method, SyncClient
from asyncinfer.testing import ServerProcess
from asyncinfer.tracing.receiver import OtlpReceiver, ReceivedSpan, tree_lines
from tests.protos import chain_pb2

pytest.importorskip("onnxruntime", reason="Model B runs an ONNX model")
pytest.importorskip(
    "opentelemetry.exporter.otlp.proto.http", reason="the 'otlp' extra exports the spans"
)

CHAIN = pathlib.Path(__file__).parents[2] / "examples" / "04_chain" / "chain.py"
CLASSIFY = Method.of(chain_pb2.DESCRIPTOR.services_by_name["Glue"].methods_by_name["Classify"])
SERVICE = "asyncinfer.examples.chain"


def role(name: str, url: str, *extra: str) -> list[str]:
    trace = [
        "level=TIMESTAMPS",
        "rate=1",
        f"opentelemetry,url={url}",
        f"opentelemetry,resource=service.name={name}",
        "opentelemetry,bsp_schedule_delay=50",
    ]
    flags = [arg for setting in trace for arg in ("--trace-config", setting)]
    return [sys.executable, str(CHAIN), "--role", name, "--port", "0", *flags, *extra]


def one(spans: list[ReceivedSpan], service: str, name: str, kind: str) -> ReceivedSpan:
    (span,) = [s for s in spans if (s.service, s.name, s.kind) == (service, name, kind)]
    return span


def test_one_call_through_the_chain_is_one_trace(capsys: pytest.CaptureFixture[str]) -> None:
    pixels = (np.arange(32, dtype=np.uint8) * 7).reshape(2, 16)
    with OtlpReceiver() as receiver:
        with (
            ServerProcess(role("model-a", receiver.url), timeout=60) as model_a,
            ServerProcess(role("model-b", receiver.url), timeout=60) as model_b,
        ):
            targets = ("--model-a", model_a.address, "--model-b", model_b.address)
            with ServerProcess(role("glue", receiver.url, *targets), timeout=60) as glue:
                with SyncClient(glue.address, CLASSIFY) as client:
                    request = chain_pb2.Images(pixels=pixels.tobytes(), batch=2)
                    assert len(client.call(request).labels) == 2
                receiver.wait_for(lambda spans: len(spans) >= 5)
        spans = list(receiver.spans)
    assert len(spans) == 5 and len({s.trace_id for s in spans}) == 1
    glue_span = one(spans, "glue", f"{SERVICE}.Glue/Classify", "SERVER")
    to_a = one(spans, "glue", f"{SERVICE}.ModelA/Featurize", "CLIENT")
    to_b = one(spans, "glue", f"{SERVICE}.ModelB/Score", "CLIENT")
    at_a = one(spans, "model-a", f"{SERVICE}.ModelA/Featurize", "SERVER")
    at_b = one(spans, "model-b", f"{SERVICE}.ModelB/Score", "SERVER")
    assert glue_span.parent_id == b""
    assert to_a.parent_id == to_b.parent_id == glue_span.span_id
    assert at_a.parent_id == to_a.span_id and at_b.parent_id == to_b.span_id
    # Model A answers before the glue calls Model B; each call lies within its caller's span.
    assert glue_span.start_ns <= to_a.start_ns <= to_a.end_ns <= to_b.start_ns
    assert to_b.end_ns <= glue_span.end_ns
    # The callee's span, timed by another process's clock: ordered, and no longer than the call.
    assert at_a.duration_ms <= to_a.duration_ms and at_b.duration_ms <= to_b.duration_ms
    with capsys.disabled():
        print("\n" + "\n".join(tree_lines(spans)))
