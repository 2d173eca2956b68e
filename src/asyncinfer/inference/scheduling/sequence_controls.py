"""Sequence control inputs: the correlation ID of a request and the START, END, READY and CORRID
arrays a sequence model's config declares, and the sequence_batching settings not built yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ...datatypes import from_config
from ...errors import InvalidArgument
from ...pb.inference.model_config_pb2 import ModelConfig, ModelSequenceBatching

__all__ = ["Controls", "CorrelationId", "check_unsupported", "correlation_id"]

CorrelationId = int | str
Array = npt.NDArray[Any]
Control = ModelSequenceBatching.Control


def correlation_id(parameters: Mapping[str, Any], model: str) -> CorrelationId:
    """The request's correlation ID; 0, "" or none at all is an error for a sequence model."""
    value = parameters.get("sequence_id")
    if isinstance(value, bool) or not isinstance(value, int | str) or value in (0, ""):
        raise InvalidArgument(
            f"inference request to model '{model}' must specify a non-zero or non-empty "
            "correlation ID"
        )
    if isinstance(value, int) and value < 0:
        # An int64_param carrying a uint64 above 2**63 arrives negative; Triton reads it as
        # the uint64 it was.
        return value + 2**64
    return value


class Controls:
    """The control inputs a config declares, as arrays for one request."""

    def __init__(self, config: ModelConfig) -> None:
        self._batched = config.max_batch_size > 0
        self._flags: dict[Any, tuple[str, Array, Array]] = {}
        self._corrid: tuple[str, int] | None = None
        for control_input in config.sequence_batching.control_input:
            for control in control_input.control:
                self._add(config.name, control_input.name, control)

    def _add(self, model: str, name: str, control: Any) -> None:
        if control.kind == Control.CONTROL_SEQUENCE_CORRID:
            if from_config(control.data_type) is None:
                raise InvalidArgument(
                    f"failed to load '{model}', control input '{name}' (CORRID) needs a "
                    "data_type (TYPE_UINT64, TYPE_INT64, TYPE_UINT32, TYPE_INT32 or TYPE_STRING)"
                )
            self._corrid = (name, control.data_type)
            return
        for values, dtype in (
            (control.int32_false_true, np.int32),
            (control.fp32_false_true, np.float32),
            (control.bool_false_true, np.bool_),
        ):
            if len(values) == 2:
                false, true = (np.array(v, dtype=dtype) for v in values)
                self._flags[control.kind] = (name, false, true)
                return
        raise InvalidArgument(
            f"failed to load '{model}', control input '{name}' needs exactly two values in "
            "int32_false_true, fp32_false_true or bool_false_true"
        )

    def arrays(self, *, start: bool, end: bool, key: CorrelationId) -> dict[str, Array]:
        shape = (1, 1) if self._batched else (1,)
        states: dict[Any, bool] = {
            Control.CONTROL_SEQUENCE_START: start,
            Control.CONTROL_SEQUENCE_END: end,
            Control.CONTROL_SEQUENCE_READY: True,
        }
        arrays = {
            name: np.full(shape, true if states.get(kind, False) else false)
            for kind, (name, false, true) in self._flags.items()
        }
        if self._corrid is not None:
            name, data_type = self._corrid
            arrays[name] = _corrid_array(key, data_type, shape)
        return arrays


def _corrid_array(key: CorrelationId, data_type: int, shape: tuple[int, ...]) -> Array:
    datatype = from_config(data_type)
    assert datatype is not None  # checked at load
    if datatype.dtype == np.object_:
        array = np.empty(shape, dtype=np.object_)
        array.fill(str(key).encode())
        return array
    if isinstance(key, str):
        raise InvalidArgument(
            f"correlation ID '{key}' is a string, but the model's CORRID control input is "
            f"{datatype.wire}; send a numeric sequence_id"
        )
    return np.full(shape, key, dtype=datatype.dtype)


def check_unsupported(config: ModelConfig) -> None:
    """Refuse sequence_batching settings this batcher does not implement, rather than ignore."""
    settings = config.sequence_batching
    unsupported = [
        name
        for name, present in (
            ("state (implicit state)", len(settings.state) > 0),
            ("iterative_sequence", settings.iterative_sequence),
            ("direct.minimum_slot_utilization", settings.direct.minimum_slot_utilization > 0),
        )
        if present
    ]
    if unsupported:
        raise InvalidArgument(
            f"failed to load '{config.name}', sequence_batching {', '.join(unsupported)} is not "
            "supported yet"
        )
