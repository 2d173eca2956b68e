"""Inference traces, collected by the SDK's in-memory exporter from a real server driven by
tritonclient: a dynamically batched request with its queue and compute phases, an ensemble with
one span per step, a BLS model's in-process calls; and TraceSetting changing what is traced at
run time (per model and globally, rate and count)."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import pathlib
import shutil
import threading
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import tritonclient.grpc as triton
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tritonclient.utils import InferenceServerException

from asyncinfer.inference.app import build_server
from asyncinfer.server import Server
from asyncinfer.tracing import TraceConfig

from .inference_servers import REPOSITORY, ThreadedServer

pytest.importorskip("onnxruntime", reason="classifier_onnx is an ONNX model")

MODELS = ("simple", "bls_add_sub", "classifier_onnx", "preprocess", "postprocess")
PHASES = ("compute_input", "queue", "compute_infer", "compute_output")
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Traced:
    def __init__(self, server: ThreadedServer, address: str, exporter: InMemorySpanExporter):
        self.threaded = server
        self.address = address
        self.exporter = exporter
        self.client = triton.InferenceServerClient(address)

    def spans(self) -> list[ReadableSpan]:
        assert self.threaded.server is not None
        assert self.threaded.server.tracing.flush()
        spans = list(self.exporter.get_finished_spans())
        self.exporter.clear()
        return spans


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    """A repository of the models below, every request traced (rate 1) into memory."""
    repository = tmp_path_factory.mktemp("traced")
    for model in (*MODELS, "ensemble_classify"):
        shutil.copytree(REPOSITORY / model, repository / model)
    exporter = InMemorySpanExporter()

    def factory() -> Server:
        server = build_server(pathlib.Path(repository), grpc_port=0)
        trace = TraceConfig(level=("TIMESTAMPS",), rate=1, exporter=exporter)
        server.config = dataclasses.replace(server.config, trace=trace)
        return server

    threaded = ThreadedServer(factory)
    with threaded as address:
        yield Traced(threaded, address, exporter)


def inputs(**arrays: np.ndarray) -> list[triton.InferInput]:
    tensors = []
    for name, array in arrays.items():
        tensor = triton.InferInput(name, list(array.shape), triton.np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors


def children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    found = [
        s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]
    return sorted(found, key=lambda s: s.start_time or 0)


def assert_within(child: ReadableSpan, parent: ReadableSpan) -> None:
    assert child.context is not None and parent.context is not None
    assert child.context.trace_id == parent.context.trace_id
    assert parent.start_time is not None and parent.end_time is not None
    assert child.start_time is not None and child.end_time is not None
    assert parent.start_time <= child.start_time <= child.end_time <= parent.end_time


def assert_phases(spans: Sequence[ReadableSpan], request: ReadableSpan) -> None:
    """The request's phases, in order, each within the request, one after the other."""
    phases = [s for s in children(spans, request) if s.name in PHASES]
    assert [s.name for s in phases] == [p for p in PHASES if p in {s.name for s in phases}]
    assert {"compute_input", "compute_infer", "compute_output"} <= {s.name for s in phases}
    for before, after in itertools.pairwise(phases):
        assert before.end_time is not None and after.start_time is not None
        assert before.end_time <= after.start_time
    for phase in phases:
        assert_within(phase, request)
    events = [event.name for event in request.events]
    assert events[0] == "REQUEST_START" and events[-1] == "REQUEST_END"


def test_a_batched_request_has_its_queue_and_compute_phases(traced: Traced) -> None:
    features = np.linspace(0, 1, 16 * 3, dtype=np.float32).reshape(3, 16)

    def one(_: int) -> None:
        traced.client.infer(
            "classifier_onnx", inputs(features=features), headers={"traceparent": TRACEPARENT}
        )

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(8)))
    spans = traced.spans()
    requests = [s for s in spans if s.name == "InferRequest"]
    assert len(requests) == 8
    for request in requests:
        assert request.kind == SpanKind.SERVER
        assert request.attributes is not None
        assert request.attributes["triton.model_name"] == "classifier_onnx"
        # The caller's traceparent is the parent: the request joins the caller's trace.
        assert request.parent is not None and request.parent.span_id == 0x00F067AA0BA902B7
        assert request.context is not None
        assert request.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
        assert_phases(spans, request)


def test_an_ensemble_has_one_span_per_step(traced: Traced) -> None:
    image = (np.arange(32, dtype=np.uint8) * 7).reshape(2, 16)
    traced.client.infer("ensemble_classify", inputs(IMAGE=image))
    spans = traced.spans()
    (request,) = [s for s in spans if s.name == "InferRequest"]
    assert request.parent is None  # no traceparent sent: a root span
    steps = [s for s in children(spans, request) if s.name.startswith("ensemble step")]
    assert [s.name for s in steps] == [
        "ensemble step preprocess",
        "ensemble step classifier_onnx",
        "ensemble step postprocess",
    ]
    for before, after in itertools.pairwise(steps):
        assert before.end_time is not None and after.start_time is not None
        assert before.end_time <= after.start_time  # each step needs the one before
    for step in steps:
        assert_within(step, request)
        assert_phases(spans, step)


def test_a_bls_model_has_one_span_per_call(traced: Traced) -> None:
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.full((1, 16), 8, np.int32)  # some differences negative: two calls to `simple`
    traced.client.infer("bls_add_sub", inputs(INPUT0=a, INPUT1=b))
    spans = traced.spans()
    (request,) = [s for s in spans if s.name == "InferRequest"]
    calls = [s for s in children(spans, request) if s.name == "BLS simple"]
    assert len(calls) == 2
    assert calls[0].end_time is not None and calls[1].start_time is not None
    assert calls[0].end_time <= calls[1].start_time
    for call in calls:
        assert_within(call, request)
        assert_phases(spans, call)


def test_trace_settings_change_what_is_traced_at_run_time(traced: Traced) -> None:
    client = traced.client
    a = np.ones((1, 16), np.int32)

    def simple(times: int) -> int:
        for _ in range(times):
            client.infer("simple", inputs(INPUT0=a, INPUT1=a))
        return len([s for s in traced.spans() if s.name == "InferRequest"])

    settings = client.get_trace_settings(as_json=True)["settings"]
    assert {key: value["value"] for key, value in settings.items()} == {
        "trace_level": ["TIMESTAMPS"],
        "trace_rate": ["1"],
        "trace_count": ["-1"],
        "trace_mode": ["opentelemetry"],
        "trace_file": [""],
        "log_frequency": ["0"],
    }
    try:
        own = client.update_trace_settings("simple", {"trace_rate": "2", "trace_count": "2"})
        assert list(own.settings["trace_rate"].value) == ["2"]
        assert simple(6) == 2  # every 2nd request, until the model's count ran out
        model = client.get_trace_settings("simple", as_json=True)["settings"]
        assert model["trace_count"]["value"] == ["0"]
        server = client.get_trace_settings(as_json=True)["settings"]
        assert server["trace_count"]["value"] == ["-1"]  # the server's own count is untouched
        client.update_trace_settings("simple", {"trace_rate": None, "trace_count": None})
        assert simple(2) == 2  # back on the server's settings
        client.update_trace_settings(settings={"trace_level": ["OFF"]})
        assert simple(2) == 0
        with pytest.raises(InferenceServerException) as info:
            client.update_trace_settings(settings={"trace_rate": "0"})
        assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert "trace_rate must be an integer >= 1, got 0" in info.value.message()
        with pytest.raises(InferenceServerException, match="Request for unknown model: 'nope'"):
            client.get_trace_settings(model_name="nope")
    finally:
        client.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"], "trace_rate": "1"})
    assert simple(1) == 1


def test_each_request_of_a_stream_has_its_span(traced: Traced) -> None:
    a = np.ones((1, 16), np.int32)
    answers: list[object] = []
    done = threading.Event()

    def callback(result: object, error: object) -> None:
        answers.append(error or result)
        if len(answers) == 2:
            done.set()

    client = traced.client
    client.start_stream(callback, headers={"traceparent": TRACEPARENT})
    try:
        for _ in range(2):
            client.async_stream_infer("simple", inputs(INPUT0=a, INPUT1=a))
        assert done.wait(20)
    finally:
        client.stop_stream()
    assert all(not isinstance(answer, InferenceServerException) for answer in answers)
    spans = traced.spans()
    requests = [s for s in spans if s.name == "InferRequest"]
    assert len(requests) == 2
    for request in requests:
        assert request.parent is not None and request.parent.span_id == 0x00F067AA0BA902B7
        assert_phases(spans, request)


def test_level_tensors_records_the_inputs_shapes(traced: Traced) -> None:
    client = traced.client
    client.update_trace_settings("simple", {"trace_level": ["TIMESTAMPS", "TENSORS"]})
    try:
        a = np.ones((1, 16), np.int32)
        client.infer("simple", inputs(INPUT0=a, INPUT1=a))
    finally:
        client.update_trace_settings("simple", {"trace_level": None})
    (request,) = [s for s in traced.spans() if s.name == "InferRequest"]
    assert request.attributes is not None
    assert request.attributes["input.INPUT0"] == "INT32 [1,16]"
    assert request.attributes["input.INPUT1"] == "INT32 [1,16]"
