"""The data plane's request type built in process: arrays (and lists of bytes or str) become
declared inputs of their own datatype and shape."""

from __future__ import annotations

import numpy as np

from asyncinfer.inference.infer_types import (
    Cancellation,
    InferInput,
    InferRequest,
    RequestedOutput,
)


def test_in_process_inputs_declare_the_arrays_datatype_and_shape() -> None:
    request = InferRequest.of_arrays(
        {"A": np.zeros((2, 3), np.float32), "B": [b"x", b"yz"], "C": ["s"]},
        outputs=["Y"],
        parameters={"sequence_id": 7},
        id="r",
    )
    assert [(t.name, t.datatype, t.shape) for t in request.inputs] == [
        ("A", "FP32", (2, 3)),
        ("B", "BYTES", (2,)),
        ("C", "BYTES", (1,)),
    ]
    b = request.inputs[1].data
    assert isinstance(b, np.ndarray) and b.dtype == np.object_ and list(b) == [b"x", b"yz"]
    assert request.outputs == [RequestedOutput("Y")]
    assert (request.parameters, request.id, request.deadline) == ({"sequence_id": 7}, "r", None)
    assert not request.cancellation.cancelled and request.timing.start_ns == 0


def test_an_array_without_a_datatype_declares_its_numpy_name() -> None:
    # The data plane then refuses it with the model's expected datatype in the message.
    assert InferInput.of("X", np.zeros(2, np.complex64)).datatype == "complex64"


def test_a_cancellation_calls_back_once_and_at_once_when_already_cancelled() -> None:
    cancellation = Cancellation()
    calls: list[str] = []
    cancellation.add_callback(lambda: calls.append("first"))
    cancellation.add_callback(lambda: calls.append("second"))
    assert calls == []
    cancellation.cancel()
    cancellation.cancel()
    assert cancellation.cancelled and calls == ["first", "second"]
    cancellation.add_callback(lambda: calls.append("late"))
    assert calls == ["first", "second", "late"]
