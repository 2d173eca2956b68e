"""Protobuf InferParameter maps to plain values and back: the only place the inference
protocol's ``parameter_choice`` oneof is read or written."""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

from ...errors import Internal
from ...pb.inference.grpc_service_pb2 import InferParameter

__all__ = ["NO_PARAMETERS", "parameter_messages", "parameter_values"]


#: The parameters of a request that has none (most do): one read-only mapping, not a new dict.
NO_PARAMETERS: Mapping[str, Any] = types.MappingProxyType({})


def parameter_values(parameters: Mapping[str, InferParameter]) -> Mapping[str, Any]:
    """Parameters as plain Python values (bool, int, float, str; None when unset)."""
    if not parameters:
        return NO_PARAMETERS
    values: dict[str, Any] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        values[key] = getattr(parameter, choice) if choice else None
    return values


def parameter_messages(values: Mapping[str, Any]) -> dict[str, InferParameter]:
    """Plain values as InferParameters: bool, int (int64; uint64 above its range), float
    (double), str."""
    messages = {}
    for key, value in values.items():
        if isinstance(value, bool):
            messages[key] = InferParameter(bool_param=value)
        elif isinstance(value, int) and value >= 2**63:
            messages[key] = InferParameter(uint64_param=value)
        elif isinstance(value, int):
            messages[key] = InferParameter(int64_param=value)
        elif isinstance(value, float):
            messages[key] = InferParameter(double_param=value)
        elif isinstance(value, str):
            messages[key] = InferParameter(string_param=value)
        else:
            raise Internal(f"response parameter '{key}' has no protobuf form: {value!r}")
    return messages
