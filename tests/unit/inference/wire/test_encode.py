"""The gRPC encoder: hand-framed ModelInferResponse bytes equal protobuf's, for every datatype,
with shared-memory outputs, response parameters and stream framing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncinfer._wire import varint
from asyncinfer.datatypes import DATATYPES, serialize_bytes
from asyncinfer.errors import InvalidArgument
from asyncinfer.inference.infer_types import InferResponse, OutputTensor
from asyncinfer.inference.shared_memory import ShmSpan
from asyncinfer.inference.wire.encode import response_bytes, stream_error, stream_response
from asyncinfer.pb.inference.grpc_service_pb2 import (
    InferParameter,
    ModelInferRequest,
    ModelInferResponse,
    ModelStreamInferResponse,
)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varint_matches_protobuf(value: int) -> None:
    message = ModelInferResponse()
    message.raw_output_contents.append(b"x" * (value % 300))
    data = message.SerializeToString()
    assert data == b"\x32" + varint(value % 300) + b"x" * (value % 300)
    assert varint(value)[-1] < 0x80


def _array(datatype: str) -> tuple[np.ndarray, bytes]:
    if datatype == "BYTES":
        array = np.array([b"x", b"yz\x00"], dtype=np.object_)
        return array, serialize_bytes(array)
    array = (np.arange(300) % 3).astype(DATATYPES[datatype].dtype)
    return array, array.tobytes()


@pytest.mark.parametrize("datatype", list(DATATYPES))
def test_hand_framed_reply_equals_protobuf_serialization(datatype: str) -> None:
    array, raw = _array(datatype)
    framed = response_bytes(InferResponse("m", "1", "r", [OutputTensor("Y", datatype, array)]))
    expected = ModelInferResponse(model_name="m", model_version="1", id="r")
    expected.outputs.add(name="Y", datatype=datatype, shape=array.shape)
    expected.raw_output_contents.append(raw)
    assert framed == expected.SerializeToString()


def test_a_shared_memory_output_has_its_shape_and_an_empty_raw_entry() -> None:
    array = np.zeros((2, 3), np.float32)
    outputs = [
        OutputTensor("A", "FP32", array, ShmSpan("r", 0, 24)),
        OutputTensor("B", "FP32", array),
    ]
    reply = ModelInferResponse.FromString(response_bytes(InferResponse("m", "1", "", outputs)))
    assert [list(t.shape) for t in reply.outputs] == [[2, 3], [2, 3]]
    assert list(reply.raw_output_contents) == [b"", array.tobytes()]


def test_response_parameters_and_stream_framing() -> None:
    response = InferResponse("m", "1", "r", parameters={"triton_final_response": True, "n": 3})
    item = stream_response(ModelInferRequest(model_name="m"), response)
    assert isinstance(item, bytes)
    parsed = ModelStreamInferResponse.FromString(item).infer_response
    assert parsed.id == "r" and parsed.parameters["triton_final_response"].bool_param
    assert parsed.parameters["n"] == InferParameter(int64_param=3)


def test_a_failed_stream_response_is_its_error_message() -> None:
    message = ModelInferRequest(model_name="m", model_version="", id="r")
    failed = InferResponse("m", "1", "r", error=InvalidArgument("bad input"))
    item = stream_response(message, failed)
    assert item == stream_error(message, "bad input")
    assert isinstance(item, ModelStreamInferResponse) and item.infer_response.id == "r"
