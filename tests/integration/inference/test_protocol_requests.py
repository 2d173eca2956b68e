"""Request-level protocol details through tritonclient, with Triton's texts: an output named
twice, BYTES element counts (too few, too many, the last wrong input reported), and a BYTES
count checked against the payload before anything of the declared shape's size exists."""

from __future__ import annotations

import resource
import struct

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException


def _strings(count: int) -> np.ndarray:
    return np.array([str(i).encode() for i in range(count)], dtype=np.object_).reshape(1, count)


def _string_inputs(counts: tuple[int, int], shape: list[int]) -> list[grpcclient.InferInput]:
    inputs = []
    for name, count in zip(("INPUT0", "INPUT1"), counts, strict=True):
        tensor = grpcclient.InferInput(name, [1, count], "BYTES")
        tensor.set_data_from_numpy(_strings(count))
        tensor.set_shape(shape)  # the declared shape no longer matches the data
        inputs.append(tensor)
    return inputs


def _refusal(call: object) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as info:
        call()  # type: ignore[operator]
    return str(info.value.status()).removeprefix("StatusCode."), info.value.message()


def test_an_output_named_twice_is_invalid_argument(url: str) -> None:
    a = grpcclient.InferInput("INPUT0", [1, 16], "INT32")
    a.set_data_from_numpy(np.zeros((1, 16), np.int32))
    b = grpcclient.InferInput("INPUT1", [1, 16], "INT32")
    b.set_data_from_numpy(np.zeros((1, 16), np.int32))
    twice = [grpcclient.InferRequestedOutput("OUTPUT1"), grpcclient.InferRequestedOutput("OUTPUT1")]
    with grpcclient.InferenceServerClient(url) as client:
        refusal = _refusal(lambda: client.infer("simple", [a, b], outputs=twice))
        assert refusal == ("INVALID_ARGUMENT", "output 'OUTPUT1' already exists in request")
        assert client.infer("simple", [a, b]).as_numpy("OUTPUT1").shape == (1, 16)


def test_bytes_element_counts_use_tritons_texts_and_report_the_last_wrong_input(
    url: str,
) -> None:
    with grpcclient.InferenceServerClient(url) as client:
        too_few = _refusal(lambda: client.infer("simple_string", _string_inputs((14, 14), [1, 16])))
        assert too_few == (
            "INVALID_ARGUMENT",
            "expected 16 string elements for inference input 'INPUT1' for model "
            "'simple_string', got 14",
        )
        too_many = _refusal(
            lambda: client.infer("simple_string", _string_inputs((18, 18), [1, 16]))
        )
        assert too_many == (
            "INVALID_ARGUMENT",
            "unexpected number of string elements 17 for inference input 'INPUT1' for model "
            "'simple_string', expecting 16",
        )
        # Only the first input is wrong: it is the one reported.
        inputs = _string_inputs((14, 16), [1, 16])
        assert (
            "inference input 'INPUT0'" in _refusal(lambda: client.infer("simple_string", inputs))[1]
        )


def test_typed_bytes_contents_counts_use_the_same_texts(url: str) -> None:
    request = service_pb2.ModelInferRequest(model_name="simple_identity")
    tensor = request.inputs.add(name="INPUT0", datatype="BYTES", shape=[1, 5])
    tensor.contents.bytes_contents.extend([b"a", b"b", b"c"])
    with grpc.insecure_channel(url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == (
        "expected 5 string elements for inference input 'INPUT0' for model 'simple_identity', got 3"
    )


def test_a_huge_bytes_shape_over_a_few_bytes_allocates_nothing_of_its_size(url: str) -> None:
    # 43 bytes of payload declaring 200 million elements: an object array of that shape
    # would be 1.6 GB; the count is walked over the payload first.
    payload = b"".join(struct.pack("<I", len(item)) + item for item in (b"x" * 7,) * 3)
    payload += b"\x00" * (43 - len(payload))
    request = service_pb2.ModelInferRequest(model_name="simple_identity")
    request.inputs.add(name="INPUT0", datatype="BYTES", shape=[1, 200_000_000])
    request.raw_input_contents.append(payload)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB; the server is in process
    with grpc.insecure_channel(url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "for inference input 'INPUT0' for model 'simple_identity'" in str(info.value.details())
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200, f"the request grew the peak memory by {grown_mib:.0f} MiB"
