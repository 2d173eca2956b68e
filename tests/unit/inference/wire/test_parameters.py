"""InferParameter maps to plain values and back: every kind, and one empty mapping shared."""

from __future__ import annotations

import pytest

from asyncinfer.errors import Internal
from asyncinfer.inference.wire.parameters import (
    NO_PARAMETERS,
    parameter_messages,
    parameter_values,
)
from asyncinfer.pb.inference.grpc_service_pb2 import ModelInferRequest


def test_values_round_trip_through_messages() -> None:
    values = {"b": True, "i": -3, "u": 2**64 - 1, "f": 0.5, "s": "x"}
    message = ModelInferRequest()
    for key, parameter in parameter_messages(values).items():
        message.parameters[key].CopyFrom(parameter)
    assert parameter_values(message.parameters) == values
    assert message.parameters["u"].WhichOneof("parameter_choice") == "uint64_param"
    assert parameter_values(ModelInferRequest().parameters) is NO_PARAMETERS


def test_a_value_without_a_protobuf_form_is_a_bug() -> None:
    with pytest.raises(Internal, match="response parameter 'x' has no protobuf form"):
        parameter_messages({"x": [1]})
