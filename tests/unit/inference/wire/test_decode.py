"""The gRPC decoder: a ModelInferRequest's envelope as an InferRequest (where each input's
data lies, outputs and their options, parameters as plain values), and the two protobuf layout
rules it checks first."""

from __future__ import annotations

import pytest

from asyncinfer.errors import InvalidArgument
from asyncinfer.inference.infer_types import ElementValues, RequestedOutput
from asyncinfer.inference.shared_memory import ShmSpan
from asyncinfer.inference.wire.decode import infer_request
from asyncinfer.pb.inference.grpc_service_pb2 import ModelInferRequest


def _two_inputs() -> ModelInferRequest:
    message = ModelInferRequest(model_name="m", id="r")
    message.inputs.add(name="A", datatype="INT32", shape=[1, 2])
    shm_input = message.inputs.add(name="B", datatype="INT32", shape=[1, 2])
    shm_input.parameters["shared_memory_region"].string_param = "in"
    shm_input.parameters["shared_memory_byte_size"].int64_param = 8
    message.raw_input_contents.append(b"\x00" * 8)
    return message


def test_raw_entries_go_to_the_inputs_not_in_shared_memory() -> None:
    message = _two_inputs()
    message.parameters["sequence_id"].uint64_param = 2**63 + 1
    message.parameters["sequence_start"].bool_param = True
    request = infer_request(message, deadline=12.5)
    assert [(t.name, t.datatype, t.shape) for t in request.inputs] == [
        ("A", "INT32", (1, 2)),
        ("B", "INT32", (1, 2)),
    ]
    assert request.inputs[0].data == b"\x00" * 8
    assert request.inputs[1].data == ShmSpan("in", 0, 8)
    assert request.parameters == {"sequence_id": 2**63 + 1, "sequence_start": True}
    assert (request.id, request.deadline, request.outputs) == ("r", 12.5, [])


def test_typed_contents_and_requested_outputs_with_their_options() -> None:
    message = ModelInferRequest(model_name="m")
    message.inputs.add(name="A", datatype="INT8", shape=[2]).contents.int_contents.extend([1, 2])
    message.outputs.add(name="X").parameters["classification"].int64_param = 3
    placed = message.outputs.add(name="Y")
    placed.parameters["shared_memory_region"].string_param = "out"
    placed.parameters["shared_memory_byte_size"].int64_param = 64
    placed.parameters["shared_memory_offset"].int64_param = 16
    message.outputs.add(name="Z")
    request = infer_request(message)
    data = request.inputs[0].data
    assert isinstance(data, ElementValues) and list(data.values) == [1, 2]
    assert data.source == "int_contents"
    assert request.outputs == [
        RequestedOutput("X", 3),
        RequestedOutput("Y", None, ShmSpan("out", 16, 64)),
        RequestedOutput("Z"),
    ]


def test_raw_and_contents_never_mix_and_raw_entries_are_counted() -> None:
    mixed = _two_inputs()
    mixed.inputs[0].contents.int_contents.append(1)
    with pytest.raises(InvalidArgument, match="contents field must not be specified when using"):
        infer_request(mixed)
    extra = _two_inputs()
    extra.raw_input_contents.append(b"")
    with pytest.raises(InvalidArgument, match="expected 1 raw_input_contents entries"):
        infer_request(extra)


def test_inputs_without_data_or_without_a_typed_field() -> None:
    message = ModelInferRequest(model_name="m")
    message.inputs.add(name="A", datatype="INT32", shape=[1])
    with pytest.raises(InvalidArgument, match="input 'A' for model 'm' has no data"):
        infer_request(message)
    message.inputs[0].datatype = "FP16"
    message.inputs[0].contents.fp32_contents.append(1)
    with pytest.raises(InvalidArgument, match="FP16 has no typed contents field"):
        infer_request(message)
