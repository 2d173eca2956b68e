"""The gRPC decoder: a ModelInferRequest's envelope as an InferRequest (where each input's
data lies, outputs and their options, parameters as plain values), and the two protobuf layout
rules it checks first."""

from __future__ import annotations

import pytest

from asyncinfer.errors import InvalidArgument
from asyncinfer.inference.infer_types import ElementValues, InferRequest, RequestedOutput
from asyncinfer.inference.shared_memory import ShmSpan
from asyncinfer.inference.wire import decode
from asyncinfer.inference.wire.decode import infer_request, received_request
from asyncinfer.inference.wire.received import InferRequestCodec, ReceivedInfer
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


def _received(message: ModelInferRequest) -> ReceivedInfer:
    codec = InferRequestCodec().bind(ModelInferRequest.DESCRIPTOR)  # type: ignore[arg-type]
    received: ReceivedInfer = codec.decode(message.SerializeToString())
    return received


def _plain(model: str, payload: bytes, request_id: str = "") -> ModelInferRequest:
    message = ModelInferRequest(model_name=model, id=request_id)
    for name in ("A", "B"):
        message.inputs.add(name=name, datatype="INT32", shape=[1, 2])
        message.raw_input_contents.append(payload)
    message.outputs.add(name="X")
    return message


def _fields(request: InferRequest) -> object:
    return (
        [(t.name, t.datatype, t.shape, bytes(t.data)) for t in request.inputs],  # type: ignore[arg-type]
        request.outputs,
        dict(request.parameters),
        request.id,
    )


def test_a_repeated_envelope_is_decoded_once_and_gives_the_same_request() -> None:
    first = received_request(_received(_plain("repeat", b"\x01" * 8)))
    again = received_request(_received(_plain("repeat", b"\x02" * 8)))
    full = infer_request(_plain("repeat", b"\x02" * 8))
    assert first.declaration is None  # decoded in full the first time
    assert again.declaration == (
        (("A", "INT32", (1, 2)), ("B", "INT32", (1, 2))),
        ("X",),
    )
    assert _fields(again) == _fields(full)
    assert again.inputs[0].data == b"\x02" * 8  # its own tensors, not the first request's
    assert again.outputs is not first.outputs  # each request owns its list


def test_envelopes_with_an_id_parameters_or_more_than_raw_entries_are_decoded_every_time() -> None:
    with_id = [received_request(_received(_plain("ids", b"\x00" * 8, "r1"))) for _ in range(2)]
    assert [r.id for r in with_id] == ["r1", "r1"]
    assert all(r.declaration is None for r in with_id)
    parameters = _plain("params", b"\x00" * 8)
    parameters.parameters["priority"].uint64_param = 2
    assert all(
        received_request(_received(parameters)).parameters == {"priority": 2} for _ in range(2)
    )
    for message in (_two_inputs(), _typed()):
        message.id = ""
        twice = [received_request(_received(message)) for _ in range(2)]
        assert twice[1].declaration is None
        assert _fields_any(twice[0]) == _fields_any(twice[1]) == _fields_any(infer_request(message))


def test_a_bad_envelope_fails_the_same_way_each_time() -> None:
    mixed = _plain("mixed", b"\x00" * 8)
    mixed.inputs[0].contents.int_contents.extend([1, 2])
    for _ in range(2):
        with pytest.raises(InvalidArgument, match="contents field must not be specified"):
            received_request(_received(mixed))


def test_the_kept_envelopes_are_bounded() -> None:
    for index in range(decode.DECLARED_ENVELOPES + 10):
        received_request(_received(_plain(f"model-{index}", b"\x00" * 8)))
        assert len(decode._declared) <= decode.DECLARED_ENVELOPES
    long_name = _plain("m" * decode.DECLARED_ENVELOPE_BYTES, b"\x00" * 8)
    received_request(_received(long_name))
    assert long_name.SerializeToString() not in decode._declared


def _typed() -> ModelInferRequest:
    message = ModelInferRequest(model_name="typed")
    message.inputs.add(name="A", datatype="INT8", shape=[2]).contents.int_contents.extend([1, 2])
    return message


def _fields_any(request: InferRequest) -> object:
    return (
        [(t.name, t.datatype, t.shape, repr(t.data)) for t in request.inputs],
        request.outputs,
        dict(request.parameters),
    )
