"""Tensor codecs: BYTES layout, raw and typed inputs of every datatype, hand-framed replies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncinfer.datatypes import DATATYPES, serialize_bytes
from asyncinfer.errors import InvalidArgument
from asyncinfer.inference.wire.encode import (
    decode_inputs,
    encode_response,
    varint,
)
from asyncinfer.pb.inference.grpc_service_pb2 import ModelInferRequest, ModelInferResponse
from asyncinfer.signature import Signature, TensorSpec


def _sig(datatype: str, dims=(-1,), max_batch_size: int = 0) -> Signature:
    spec = TensorSpec("X", DATATYPES[datatype], tuple(dims))
    return Signature(
        "m", max_batch_size, {"X": spec}, {"Y": TensorSpec("Y", DATATYPES[datatype], tuple(dims))}
    )


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varint_matches_protobuf(value: int) -> None:
    message = ModelInferResponse()
    message.raw_output_contents.append(b"x" * (value % 300))
    data = message.SerializeToString()
    assert data == b"\x32" + varint(value % 300) + b"x" * (value % 300)
    assert varint(value)[-1] < 0x80


@pytest.mark.parametrize("datatype", [d for d in DATATYPES if d != "BYTES"])
def test_raw_inputs_of_every_datatype_are_views(datatype: str) -> None:
    dtype = DATATYPES[datatype].dtype
    array = (np.arange(6) % 2).astype(dtype).reshape(2, 3)
    request = ModelInferRequest(model_name="m")
    request.inputs.add(name="X", datatype=datatype, shape=[2, 3])
    request.raw_input_contents.append(array.tobytes())
    arrays, batch = decode_inputs(request, _sig(datatype, dims=(-1, 3)))
    np.testing.assert_array_equal(arrays["X"], array)
    assert arrays["X"].dtype == dtype and not arrays["X"].flags.writeable
    assert batch == 1


@pytest.mark.parametrize(
    ("datatype", "field", "values"),
    [
        ("BOOL", "bool_contents", [True, False]),
        ("INT8", "int_contents", [-128, 127]),
        ("INT16", "int_contents", [-5, 5]),
        ("INT32", "int_contents", [1, -2]),
        ("INT64", "int64_contents", [2**40, -1]),
        ("UINT8", "uint_contents", [0, 255]),
        ("UINT16", "uint_contents", [1, 65535]),
        ("UINT32", "uint_contents", [1, 2**32 - 1]),
        ("UINT64", "uint64_contents", [2**64 - 1, 0]),
        ("FP32", "fp32_contents", [1.5, -2.0]),
        ("FP64", "fp64_contents", [1e300, 0.25]),
        ("BYTES", "bytes_contents", [b"a\x00", b""]),
    ],
)
def test_typed_contents_of_every_datatype(datatype: str, field: str, values: list) -> None:
    request = ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="X", datatype=datatype, shape=[2])
    getattr(tensor.contents, field).extend(values)
    arrays, _ = decode_inputs(request, _sig(datatype))
    assert list(arrays["X"]) == values


def test_int8_contents_out_of_range() -> None:
    request = ModelInferRequest(model_name="m")
    request.inputs.add(name="X", datatype="INT8", shape=[1]).contents.int_contents.append(300)
    with pytest.raises(InvalidArgument, match="outside the range of INT8"):
        decode_inputs(request, _sig("INT8"))


def test_fp16_has_no_typed_contents() -> None:
    request = ModelInferRequest(model_name="m")
    request.inputs.add(name="X", datatype="FP16", shape=[1]).contents.fp32_contents.append(1)
    with pytest.raises(InvalidArgument, match="FP16 has no typed contents field"):
        decode_inputs(request, _sig("FP16"))


@pytest.mark.parametrize("datatype", list(DATATYPES))
def test_hand_framed_reply_equals_protobuf_serialization(datatype: str) -> None:
    if datatype == "BYTES":
        array = np.array([b"x", b"yz\x00"], dtype=np.object_)
        raw = serialize_bytes(array)
    else:
        array = (np.arange(300) % 3).astype(DATATYPES[datatype].dtype)
        raw = array.tobytes()
    request = ModelInferRequest(model_name="m", id="r")
    framed = encode_response(request, "m", "1", [("Y", datatype, array)])
    expected = ModelInferResponse(model_name="m", model_version="1", id="r")
    expected.outputs.add(name="Y", datatype=datatype, shape=array.shape)
    expected.raw_output_contents.append(raw)
    assert framed == expected.SerializeToString()
