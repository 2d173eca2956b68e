"""pb_utils without a server: tensors and DLPack, the type tables, BYTES serialization,
TritonError codes and statuses, responses and their checks, auto-complete's ModelConfig."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asyncinfer.errors import Cancelled, Internal, InvalidArgument, NotFound, Unimplemented
from asyncinfer.inference.backends.triton_python import pb_utils
from asyncinfer.inference.python_model import Request


def test_tensor_views_its_array_and_round_trips_through_dlpack() -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    tensor = pb_utils.Tensor("X", array)
    assert tensor.name() == "X" and tensor.is_cpu() and tensor.as_numpy() is array
    back = pb_utils.Tensor.from_dlpack("Y", array)
    np.testing.assert_array_equal(back.as_numpy(), array)
    assert tensor.to_dlpack() is not None


def test_bytes_tensor_has_no_dlpack_and_a_bare_capsule_is_refused() -> None:
    strings = pb_utils.Tensor("S", np.array([b"a"], dtype=np.object_))
    with pytest.raises(pb_utils.TritonModelException, match="DLPack cannot carry"):
        strings.to_dlpack()
    capsule = pb_utils.Tensor("X", np.zeros(2, np.int32)).to_dlpack()
    with pytest.raises(pb_utils.TritonModelException, match="bare PyCapsule"):
        pb_utils.Tensor.from_dlpack("Y", capsule)


@pytest.mark.parametrize(
    ("config_type", "numpy_type", "code"),
    [("TYPE_FP32", np.float32, 11), ("TYPE_INT64", np.int64, 9), ("TYPE_STRING", np.object_, 13),
     ("TYPE_BOOL", np.bool_, 1)],
)  # fmt: skip
def test_type_tables_agree(config_type: str, numpy_type: type, code: int) -> None:
    assert pb_utils.triton_string_to_numpy(config_type) is numpy_type
    assert pb_utils.numpy_to_triton_type(numpy_type) == code
    assert pb_utils.triton_to_numpy_type(code) is numpy_type


def test_unknown_types_raise() -> None:
    with pytest.raises(pb_utils.TritonModelException, match="TYPE_NOPE"):
        pb_utils.triton_string_to_numpy("TYPE_NOPE")
    with pytest.raises(pb_utils.TritonModelException, match="99"):
        pb_utils.triton_to_numpy_type(99)


def test_byte_tensor_serialization_round_trips() -> None:
    values = np.array([b"", b"one", b"\x00\xff"], dtype=np.object_)
    encoded = pb_utils.serialize_byte_tensor(values)
    assert encoded.dtype == np.uint8
    assert list(pb_utils.deserialize_bytes_tensor(encoded)) == list(values)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (pb_utils.TritonError.INVALID_ARG, InvalidArgument),
        (pb_utils.TritonError.NOT_FOUND, NotFound),
        (pb_utils.TritonError.UNSUPPORTED, Unimplemented),
        (pb_utils.TritonError.CANCELLED, Cancelled),
    ],
)
def test_triton_error_code_maps_to_its_status_both_ways(code: int, status: type) -> None:
    error = pb_utils.TritonError("bad", code)
    assert error.status() is status and error.message() == "bad"
    assert pb_utils.TritonError.of_rpc_error(status("bad")).code() == code
    response = pb_utils.InferenceResponse(error=error).to_model()
    assert response.error is not None and response.error.status is status


def test_triton_error_defaults_to_internal_and_refuses_unknown_codes() -> None:
    assert pb_utils.TritonError("x").status() is Internal
    with pytest.raises(ValueError, match="code must be one of"):
        pb_utils.TritonError("x", 42)


def test_response_checks_what_it_is_given() -> None:
    with pytest.raises(pb_utils.TritonModelException, match=r"pb_utils\.Tensor objects"):
        pb_utils.InferenceResponse([np.zeros(2)])  # type: ignore[list-item]
    with pytest.raises(pb_utils.TritonModelException, match=r"pb_utils\.TritonError"):
        pb_utils.InferenceResponse(error=RuntimeError("x"))  # type: ignore[arg-type]
    with pytest.raises(pb_utils.TritonModelException, match="not valid JSON"):
        pb_utils.InferenceResponse([], parameters="{nope")
    response = pb_utils.InferenceResponse([], parameters='{"a": 1}')
    assert json.loads(response.parameters()) == {"a": 1}
    assert response.to_model().parameters == {"a": 1}


def test_request_view_reads_sequence_parameters_as_tritons_fields() -> None:
    model_request = Request(
        {"IN": np.zeros(2, np.int32)},
        requested_output_names=["OUT"],
        parameters={"sequence_id": 7, "sequence_start": True, "greeting": "hi", "timeout": 5},
        id="r",
    )
    request = pb_utils.InferenceRequest.of_model(model_request, "m")
    assert request.correlation_id() == 7 and request.timeout() == 5 and request.request_id() == "r"
    assert request.flags() == pb_utils.TRITONSERVER_REQUEST_FLAG_SEQUENCE_START
    assert json.loads(request.parameters()) == {"greeting": "hi"}
    assert pb_utils.get_input_tensor_by_name(request, "IN") is not None
    assert pb_utils.get_input_tensor_by_name(request, "NOPE") is None
    assert not request.is_cancelled()
    with pytest.raises(pb_utils.TritonModelException, match="only decoupled models"):
        request.get_response_sender()


def test_what_asyncinfer_cannot_honour_raises_naming_it() -> None:
    with pytest.raises(pb_utils.TritonModelException, match=r"load_model\('m'\)"):
        pb_utils.load_model("m")
    with pytest.raises(pb_utils.TritonModelException, match="unload_model"):
        pb_utils.unload_model("m")
    with pytest.raises(pb_utils.TritonModelException, match="trace"):
        pb_utils.InferenceRequest("m", [], [], trace=object())
    request = pb_utils.InferenceRequest("m", [], [])
    with pytest.raises(pb_utils.TritonModelException, match="RESCHEDULE"):
        request.set_release_flags(pb_utils.TRITONSERVER_REQUEST_RELEASE_RESCHEDULE)
    # Outside any model (or after the last model's server stopped): no BLS, said as much.
    with pytest.raises(pb_utils.TritonModelException, match=r"InferenceRequest\.exec\(\) is not"):
        request.exec()


def test_auto_complete_config_adds_and_refuses_contradictions() -> None:
    config = pb_utils.ModelConfig(
        {"name": "m", "input": [{"name": "IN", "data_type": "TYPE_FP32", "dims": [4]}]}
    )
    config.add_input({"name": "IN", "data_type": "TYPE_FP32", "dims": [4], "optional": True})
    config.add_output({"name": "OUT", "data_type": "TYPE_FP32", "dims": [4]})
    config.set_max_batch_size(8)
    config.set_dynamic_batching()
    config.set_model_transaction_policy({"decoupled": False})
    completed = config.as_dict()
    assert completed["input"] == [
        {"name": "IN", "data_type": "TYPE_FP32", "dims": [4], "optional": True}
    ]
    assert completed["max_batch_size"] == 8 and completed["dynamic_batching"] == {}
    with pytest.raises(pb_utils.TritonModelException, match="already has it with dims"):
        config.add_input({"name": "IN", "dims": [5]})
    with pytest.raises(pb_utils.TritonModelException, match="max_batch_size 8"):
        config.set_max_batch_size(4)
    with pytest.raises(pb_utils.TritonModelException, match="unknown key"):
        config.add_output({"name": "X", "shape": [1]})
