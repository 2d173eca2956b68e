"""The HTTP codec: request bodies (JSON and binary) to InferRequests, InferResponses back, and
nested JSON data flattened exactly when it nests as the shape."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from asyncinfer.errors import InvalidArgument
from asyncinfer.inference.http.codec import decode_request, encode_response
from asyncinfer.inference.infer_types import ElementValues, InferResponse, OutputTensor


def _body(header: dict[str, Any], *tail: bytes) -> tuple[bytes, str]:
    text = json.dumps(header).encode()
    return text + b"".join(tail), str(len(text))


def test_binary_and_json_inputs_and_options() -> None:
    raw = np.arange(4, dtype=np.int32).tobytes()
    body, length = _body(
        {
            "id": "r1",
            "parameters": {"binary_data_output": True, "sequence_id": 7},
            "inputs": [
                {"name": "A", "datatype": "INT32", "shape": [1, 4],
                 "parameters": {"binary_data_size": 16}},
                {"name": "B", "datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, 4]]},
            ],
            "outputs": [{"name": "X", "parameters": {"binary_data": False, "classification": 2}}],
        },
        raw,
    )  # fmt: skip
    decoded = decode_request(body, length, "m", None)
    request = decoded.request
    assert request.id == "r1" and dict(request.parameters) == {"sequence_id": 7}
    a, b = request.inputs
    assert bytes(a.data) == raw  # type: ignore[arg-type]
    assert isinstance(b.data, ElementValues) and list(b.data.values) == [1, 2, 3, 4]
    assert request.outputs[0].class_count == 2
    assert decoded.binary_default is True and decoded.binary_outputs == {"X": False}


def test_encode_binary_and_json_outputs() -> None:
    response = InferResponse(
        "m", "1", "r1",
        [OutputTensor("X", "INT32", np.arange(4, dtype=np.int32).reshape(2, 2)),
         OutputTensor("S", "BYTES", np.array([b"hi", b"\xff"], dtype=np.object_))],
    )  # fmt: skip
    parts, length = encode_response(response, False, {"X": True})
    body = b"".join(parts)
    assert length is not None
    header = json.loads(body[:length])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 16}
    assert np.frombuffer(body[length:], np.int32).tolist() == [0, 1, 2, 3]
    assert header["outputs"][1]["data"] == ["hi", "\udcff"]
    assert encode_response(response, False, {})[1] is None


@given(hnp.arrays(np.int32, hnp.array_shapes(min_dims=2, max_dims=4, max_side=3)))
def test_nested_data_flattens_row_major(array: np.ndarray[Any, Any]) -> None:
    body, _ = _body(
        {"inputs": [{"name": "A", "datatype": "INT32", "shape": list(array.shape),
                     "data": array.tolist()}]}
    )  # fmt: skip
    (tensor,) = decode_request(body, None, "m", None).request.inputs
    assert isinstance(tensor.data, ElementValues)
    assert list(tensor.data.values) == array.reshape(-1).tolist()


@given(st.integers(1, 4), st.integers(1, 4))
def test_nesting_other_than_the_shape_is_refused(rows: int, columns: int) -> None:
    data = np.zeros((rows, columns), np.int32).tolist()
    body, _ = _body(
        {"inputs": [{"name": "A", "datatype": "INT32", "shape": [columns + 1, rows],
                     "data": data}]}
    )  # fmt: skip
    with pytest.raises(InvalidArgument, match="does not nest as its shape"):
        decode_request(body, None, "m", None)
