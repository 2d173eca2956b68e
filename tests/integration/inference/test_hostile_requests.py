"""Requests a client may send to hurt the server: shapes no data can fill, correlation IDs
that do not fit the CORRID control, flags of the wrong type. Each is INVALID_ARGUMENT naming
what was wrong, before anything of its size is allocated, and the server keeps serving; the
example sequence models answer every correlation ID their configs accept."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from asyncinfer.inference.app import build_server

from .inference_servers import REPOSITORY, ThreadedServer

MODELS = ("simple", "simple_identity", "simple_dyna_sequence", "simple_string_dyna_sequence")


@pytest.fixture(scope="module")
def stub(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    root = tmp_path_factory.mktemp("hostile")
    for name in MODELS:
        shutil.copytree(REPOSITORY / name, root / name, symlinks=True)
    # The same model with an INT32 CORRID control.
    int32 = root / "int32_corrid_sequence"
    shutil.copytree(REPOSITORY / "simple_dyna_sequence", int32)
    config = (int32 / "config.pbtxt").read_text()
    config = config.replace('"simple_dyna_sequence"', '"int32_corrid_sequence"')
    (int32 / "config.pbtxt").write_text(config.replace("TYPE_UINT64", "TYPE_INT32"))
    # An identity model whose input has three dims of any extent.
    wide = root / "wide_identity"
    shutil.copytree(REPOSITORY / "custom_identity_int32", wide)
    config = (
        (wide / "config.pbtxt").read_text().replace('"custom_identity_int32"', '"wide_identity"')
    )
    (wide / "config.pbtxt").write_text(config.replace("dims: [ -1 ]", "dims: [ -1, -1, -1 ]"))
    server = ThreadedServer(lambda: build_server(root, grpc_port=0))
    with server as address, grpc.insecure_channel(address) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def _fails(
    stub: service_pb2_grpc.GRPCInferenceServiceStub,
    request: service_pb2.ModelInferRequest,
    *texts: str,
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request, timeout=20)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    for text in texts:
        assert text in (info.value.details() or "")


def _simple(stub: service_pb2_grpc.GRPCInferenceServiceStub) -> None:
    """The server still serves."""
    request = service_pb2.ModelInferRequest(model_name="simple")
    for name in ("INPUT0", "INPUT1"):
        request.inputs.add(name=name, datatype="INT32", shape=[1, 16])
        request.raw_input_contents.append(np.ones(16, np.int32).tobytes())
    reply = stub.ModelInfer(request, timeout=20)
    assert np.frombuffer(reply.raw_output_contents[0], np.int32).tolist() == [2] * 16


@pytest.mark.parametrize(
    ("model", "datatype", "shape", "payload"),
    [
        ("simple_identity", "BYTES", [1, 2**40], b""),  # 2^40 BYTES elements
        ("wide_identity", "INT32", [1, 2**62, 1, 1], b"\0" * 64),  # 2^62 x 4 bytes
        ("wide_identity", "INT32", [1, 0, 2**62, 2], b""),  # a zero extent beside huge ones
    ],
)
def test_shapes_no_data_can_fill_are_invalid_argument(
    stub: service_pb2_grpc.GRPCInferenceServiceStub,
    model: str,
    datatype: str,
    shape: list[int],
    payload: bytes,
) -> None:
    request = service_pb2.ModelInferRequest(model_name=model)
    request.inputs.add(name="INPUT0", datatype=datatype, shape=shape)
    request.raw_input_contents.append(payload)
    _fails(stub, request, "'INPUT0'", f"'{model}'", "cannot exist")
    _simple(stub)


def test_overflowing_products_of_dims_are_invalid_argument(
    stub: service_pb2_grpc.GRPCInferenceServiceStub,
) -> None:
    request = service_pb2.ModelInferRequest(model_name="wide_identity")
    request.inputs.add(name="INPUT0", datatype="INT32", shape=[1, 2**32, 2**32, 2**20])
    request.raw_input_contents.append(b"")
    _fails(stub, request, "'INPUT0'", "cannot exist")
    _simple(stub)


def _sequence_request(
    model: str, sequence_id: service_pb2.InferParameter, **flags: service_pb2.InferParameter
) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=model)
    request.inputs.add(name="INPUT", datatype="INT32", shape=[1, 1])
    request.raw_input_contents.append(np.array([[1]], np.int32).tobytes())
    request.parameters["sequence_id"].CopyFrom(sequence_id)
    for name, value in flags.items():
        request.parameters[name].CopyFrom(value)
    return request


@pytest.mark.parametrize(
    ("model", "sequence_id"),
    [
        ("int32_corrid_sequence", service_pb2.InferParameter(int64_param=2**31)),
        ("int32_corrid_sequence", service_pb2.InferParameter(int64_param=-1)),
        ("int32_corrid_sequence", service_pb2.InferParameter(uint64_param=2**63)),
    ],
)
def test_correlation_ids_beyond_the_corrid_datatype_are_invalid_argument(
    stub: service_pb2_grpc.GRPCInferenceServiceStub,
    model: str,
    sequence_id: service_pb2.InferParameter,
) -> None:
    start = service_pb2.InferParameter(bool_param=True)
    request = _sequence_request(model, sequence_id, sequence_start=start)
    _fails(stub, request, "sequence_id", "control input 'CORRID'", "INT32")
    _simple(stub)


@pytest.mark.parametrize(
    "sequence_id",
    [
        service_pb2.InferParameter(uint64_param=2**64 - 1),
        service_pb2.InferParameter(int64_param=-5),  # the uint64 2^64 - 5, as Triton reads it
        service_pb2.InferParameter(uint64_param=2**63 + 7),
    ],
)
def test_every_uint64_correlation_id_runs_on_the_example_model(
    stub: service_pb2_grpc.GRPCInferenceServiceStub, sequence_id: service_pb2.InferParameter
) -> None:
    flags = {
        "sequence_start": service_pb2.InferParameter(bool_param=True),
        "sequence_end": service_pb2.InferParameter(bool_param=True),
    }
    reply = stub.ModelInfer(
        _sequence_request("simple_dyna_sequence", sequence_id, **flags), timeout=20
    )
    assert len(reply.raw_output_contents) == 1


@pytest.mark.parametrize("corrid", ["9" * 40, "-2147483649", "4294967296"])
def test_string_correlation_ids_of_any_size_run_on_the_example_model(
    stub: service_pb2_grpc.GRPCInferenceServiceStub, corrid: str
) -> None:
    flags = {
        "sequence_start": service_pb2.InferParameter(bool_param=True),
        "sequence_end": service_pb2.InferParameter(bool_param=True),
    }
    sequence_id = service_pb2.InferParameter(string_param=corrid)
    request = _sequence_request("simple_string_dyna_sequence", sequence_id, **flags)
    reply = stub.ModelInfer(request, timeout=20)
    total = int(np.frombuffer(reply.raw_output_contents[0], np.int32)[0])
    assert total == (1 + int(corrid) + 2**31) % 2**32 - 2**31  # wrapped like a C int32


@pytest.mark.parametrize("flag", ["sequence_start", "sequence_end"])
def test_sequence_flags_given_as_strings_are_invalid_argument(
    stub: service_pb2_grpc.GRPCInferenceServiceStub, flag: str
) -> None:
    sequence_id = service_pb2.InferParameter(int64_param=77)
    value = service_pb2.InferParameter(string_param="false")
    request = _sequence_request("simple_dyna_sequence", sequence_id, **{flag: value})
    _fails(stub, request, f"parameter '{flag}'", "must be a bool, not str")
    _simple(stub)
