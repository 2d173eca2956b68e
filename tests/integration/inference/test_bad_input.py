"""Bad requests, sent as raw protocol messages through tritonclient's own stub: each gets the
status Triton gives and a message naming the tensor and the model; the server keeps serving."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc


@pytest.fixture
def stub(url: str) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(url) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def _simple_request(
    a: np.ndarray | None = None, b: np.ndarray | None = None, datatype: str = "INT32"
) -> service_pb2.ModelInferRequest:
    a = np.arange(16, dtype=np.int32).reshape(1, 16) if a is None else a
    b = np.ones((1, 16), np.int32) if b is None else b
    request = service_pb2.ModelInferRequest(model_name="simple")
    for name, array in (("INPUT0", a), ("INPUT1", b)):
        request.inputs.add(name=name, datatype=datatype, shape=array.shape)
        request.raw_input_contents.append(array.tobytes())
    return request


def _fails(
    stub: service_pb2_grpc.GRPCInferenceServiceStub,
    request: service_pb2.ModelInferRequest,
    code: grpc.StatusCode,
    *texts: str,
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request, timeout=10)
    assert info.value.code() == code, info.value.details()
    for text in texts:
        assert text in (info.value.details() or "")


def _bytes(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def test_typed_int32_and_int8_contents(stub: service_pb2_grpc.GRPCInferenceServiceStub) -> None:
    for model, datatype, dtype in (("simple", "INT32", np.int32), ("simple_int8", "INT8", np.int8)):
        request = service_pb2.ModelInferRequest(model_name=model)
        for name in ("INPUT0", "INPUT1"):
            tensor = request.inputs.add(name=name, datatype=datatype, shape=[1, 16])
            tensor.contents.int_contents.extend(range(16))
        reply = stub.ModelInfer(request, timeout=10)
        assert len(reply.raw_output_contents) == 2  # outputs stay raw
        total = np.frombuffer(reply.raw_output_contents[0], dtype)
        np.testing.assert_array_equal(total, np.arange(16, dtype=dtype) * 2)


def test_typed_bytes_contents(stub: service_pb2_grpc.GRPCInferenceServiceStub) -> None:
    request = service_pb2.ModelInferRequest(model_name="simple_string")
    for name in ("INPUT0", "INPUT1"):
        tensor = request.inputs.add(name=name, datatype="BYTES", shape=[1, 16])
        tensor.contents.bytes_contents.extend(str(i).encode() for i in range(16))
    reply = stub.ModelInfer(request, timeout=10)
    assert reply.raw_output_contents[0] == _bytes(*(str(2 * i).encode() for i in range(16)))


def test_raw_and_contents_mixed_is_rejected_before_size_checks(
    stub: service_pb2_grpc.GRPCInferenceServiceStub,
) -> None:
    request = _simple_request()
    request.raw_input_contents[0] = b"\x00" * 3  # wrong size: must not be what is reported
    request.inputs[0].contents.int_contents.append(1)
    _fails(
        stub,
        request,
        grpc.StatusCode.INVALID_ARGUMENT,
        "contents field must not be specified when using raw_input_contents for 'INPUT0' "
        "for model 'simple'",
    )


@pytest.mark.parametrize(
    ("mutate", "texts"),
    [
        (
            lambda r: setattr(r.inputs[0], "datatype", "FP32"),
            ["inference input 'INPUT0' data-type is 'FP32', but model 'simple' expects 'INT32'"],
        ),
        (
            lambda r: (r.inputs[0].ClearField("shape"), r.inputs[0].shape.extend([1, 8])),
            ["unexpected shape for input 'INPUT0' for model 'simple'", "[-1, 16]"],
        ),
        (
            lambda r: (r.inputs[1].ClearField("shape"), r.inputs[1].shape.extend([1, -16])),
            ["input 'INPUT1' for model 'simple' has a negative dimension"],
        ),
        (
            lambda r: r.raw_input_contents.__setitem__(1, b"\x00" * 60),
            ["unexpected total byte size 60 for input 'INPUT1' for model 'simple', expecting 64"],
        ),
        (
            lambda r: (r.inputs.pop(), r.raw_input_contents.pop()),
            ["expected 2 inputs but got 1 inputs for model 'simple'", "['INPUT1']"],
        ),
        (
            lambda r: r.outputs.add(name="OUTPUT9"),
            ["unexpected inference output 'OUTPUT9' for model 'simple'"],
        ),
        (
            lambda r: setattr(r.inputs[0], "name", "INPUTX"),
            ["unexpected inference input 'INPUTX' for model 'simple'"],
        ),
        (
            lambda r: setattr(r, "model_version", "wrong_specification"),
            ["failed to get model version from specified version string 'wrong_specification'"],
        ),
    ],
    ids=[
        "datatype",
        "shape",
        "negative-dims",
        "raw-size",
        "missing-input",
        "unknown-output",
        "unknown-input",
        "bad-version",
    ],
)
def test_invalid_argument(
    stub: service_pb2_grpc.GRPCInferenceServiceStub,
    mutate: Callable[[service_pb2.ModelInferRequest], object],
    texts: list[str],
) -> None:
    request = _simple_request()
    mutate(request)
    _fails(stub, request, grpc.StatusCode.INVALID_ARGUMENT, *texts)


def test_batch_over_max_batch_size(stub: service_pb2_grpc.GRPCInferenceServiceStub) -> None:
    a = np.ones((9, 16), np.int32)
    _fails(
        stub,
        _simple_request(a, a),
        grpc.StatusCode.INVALID_ARGUMENT,
        "inference request batch-size must be <= 8 for 'simple'",
    )


def test_bytes_with_truncated_length_prefix(
    stub: service_pb2_grpc.GRPCInferenceServiceStub,
) -> None:
    request = service_pb2.ModelInferRequest(model_name="simple_identity")
    request.inputs.add(name="INPUT0", datatype="BYTES", shape=[1, 2])
    request.raw_input_contents.append(_bytes(b"abc") + b"\x05\x00")
    _fails(
        stub,
        request,
        grpc.StatusCode.INVALID_ARGUMENT,
        "incomplete string length indicator for inference input 'INPUT0' for model "
        "'simple_identity', expecting 4 bytes but only 2 bytes available",
    )


def test_unknown_model(stub: service_pb2_grpc.GRPCInferenceServiceStub) -> None:
    request = _simple_request()
    request.model_name = "no_such_model"
    _fails(stub, request, grpc.StatusCode.NOT_FOUND, "Request for unknown model: 'no_such_model'")


def test_server_keeps_serving_after_bad_input(
    stub: service_pb2_grpc.GRPCInferenceServiceStub,
) -> None:
    bad = _simple_request()
    bad.raw_input_contents[0] = b"x"
    for _ in range(3):
        with pytest.raises(grpc.RpcError):
            stub.ModelInfer(bad, timeout=10)
    reply = stub.ModelInfer(_simple_request(), timeout=10)
    np.testing.assert_array_equal(
        np.frombuffer(reply.raw_output_contents[0], np.int32), np.arange(16) + 1
    )


def _identity_bytes_request(raw: bytes, shape: list[int]) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="simple_identity")
    request.inputs.add(name="INPUT0", datatype="BYTES", shape=shape)
    request.raw_input_contents.append(raw)
    return request


@pytest.mark.parametrize(
    ("build", "texts"),
    [
        (
            lambda: _identity_bytes_request(_bytes(b"a", b"b") + b"zz", [1, 2]),
            ["unexpected number of string elements 3 for inference input 'INPUT0'"],
        ),
        (
            lambda: _identity_bytes_request(struct.pack("<I", 9) + b"abc", [1, 1]),
            [
                "incomplete string for inference input 'INPUT0'",
                "expecting string of length 9 but only 3 bytes available",
            ],
        ),
        (
            lambda: _simple_request(np.ones((2, 16), np.int32), np.ones((1, 16), np.int32)),
            ["must have the same batch size", "[1, 2]"],
        ),
        (
            lambda: _with(_simple_request(), lambda r: r.raw_input_contents.pop()),
            ["expected 2 raw_input_contents entries", "but got 1 for model 'simple'"],
        ),
        (
            lambda: _with(_simple_request(), lambda r: setattr(r.inputs[1], "name", "INPUT0")),
            ["input 'INPUT0' appears more than once"],
        ),
        (lambda: _typed_simple(15), ["unexpected number of elements 15 in int_contents"]),
        (
            lambda: _with(_typed_simple(16), lambda r: r.inputs[0].ClearField("contents")),
            ["input 'INPUT0' for model 'simple' has no data"],
        ),
    ],
    ids=[
        "bytes-leftover",
        "bytes-overlong",
        "batch-mismatch",
        "raw-count",
        "duplicate-input",
        "typed-count",
        "no-data",
    ],
)
def test_more_invalid_arguments(
    stub: service_pb2_grpc.GRPCInferenceServiceStub,
    build: Callable[[], service_pb2.ModelInferRequest],
    texts: list[str],
) -> None:
    _fails(stub, build(), grpc.StatusCode.INVALID_ARGUMENT, *texts)


def _with(
    request: service_pb2.ModelInferRequest,
    mutate: Callable[[service_pb2.ModelInferRequest], object],
) -> service_pb2.ModelInferRequest:
    mutate(request)
    return request


def _typed_simple(count: int) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="simple")
    for name in ("INPUT0", "INPUT1"):
        tensor = request.inputs.add(name=name, datatype="INT32", shape=[1, 16])
        tensor.contents.int_contents.extend(range(count))
    return request
