"""Sequence-batching settings read from a model config, checked once at load: the slots and
delays (:class:`SequencePolicy`), the control inputs START, END, READY and CORRID a config declares
(:class:`Controls`), a request's correlation ID, and the settings not built yet (refused).

The sequence batcher gets only these plain objects: no protobuf reaches a scheduler.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ...datatypes import from_config
from ...errors import InvalidArgument, echo
from ...pb.inference.model_config_pb2 import ModelConfig, ModelSequenceBatching

__all__ = [
    "Controls",
    "CorrelationId",
    "SequencePolicy",
    "check_unsupported",
    "control_inputs",
    "correlation_id",
    "sequence_flag",
]

CorrelationId = int | str
Array = npt.NDArray[Any]
Control = ModelSequenceBatching.Control
DEFAULT_IDLE_US = 1_000_000  # Triton's default max_sequence_idle_microseconds
#: New sequences that may wait for a slot at once, unless the config's parameters say
#: (``parameters { key: "max_sequence_backlog" value { string_value: "N" } }``).
DEFAULT_BACKLOG = 1024


def correlation_id(parameters: Mapping[str, Any], model: str) -> CorrelationId:
    """The request's correlation ID; 0, "" or none at all is an error for a sequence model."""
    value = parameters.get("sequence_id")
    if isinstance(value, bool) or not isinstance(value, int | str) or value in (0, ""):
        raise InvalidArgument(
            f"inference request to model '{model}' must specify a non-zero or non-empty "
            "correlation ID"
        )
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        raise InvalidArgument(
            f"sequence_id {value} of a request to model '{model}' does not fit a uint64 "
            "(expected 1..18446744073709551615)"
        )
    if isinstance(value, int) and value < 0:
        # An int64_param carrying a uint64 above 2**63 arrives negative; Triton reads it as
        # the uint64 it was.
        return value + 2**64
    return value


def sequence_flag(parameters: Mapping[str, Any], name: str, model: str) -> bool:
    """The bool parameter ``name`` (sequence_start, sequence_end); False when absent. Any other
    type is InvalidArgument: the string "false" must not start a sequence."""
    value = parameters.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidArgument(
            f"parameter '{name}' of a request to model '{model}' must be a bool, not "
            f"{type(value).__name__} {echo(repr(value))}"
        )
    return value


@dataclasses.dataclass(frozen=True, eq=False)
class SequencePolicy:
    """A model's sequence_batching block, checked: what the sequence batcher runs by."""

    model: str
    #: The model batches (max_batch_size > 0): control inputs get a batch dimension.
    batched: bool
    strategy: str  # "direct" or "oldest"
    #: Requests (one per sequence) in one execution: max(max_batch_size, 1).
    max_batch: int
    #: How long a batch may wait for more sequences' requests, in seconds.
    delay_s: float
    #: oldest: a batch of one of these sizes runs at once, without waiting out the delay.
    preferred: frozenset[int]
    slots_per_instance: int
    #: A sequence idle this long (seconds) loses its slot.
    idle_s: float
    controls: Controls
    #: New sequences that may wait for a slot at once (Triton's backlog is unbounded).
    max_backlog: int = DEFAULT_BACKLOG

    @classmethod
    def from_config(cls, config: ModelConfig) -> SequencePolicy:
        """The policy of ``config``; InvalidArgument naming the model for a setting that is
        not built yet or a control input that is incomplete."""
        check_unsupported(config)
        settings = config.sequence_batching
        strategy = settings.WhichOneof("strategy_choice") or "direct"
        chosen = settings.oldest if strategy == "oldest" else settings.direct
        max_batch = max(config.max_batch_size, 1)
        slots = (
            max(settings.oldest.max_candidate_sequences, max_batch)
            if strategy == "oldest"
            else max_batch
        )
        return cls(
            model=config.name,
            batched=config.max_batch_size > 0,
            strategy=strategy,
            max_batch=max_batch,
            delay_s=chosen.max_queue_delay_microseconds / 1e6,
            preferred=frozenset(settings.oldest.preferred_batch_size),
            slots_per_instance=slots,
            idle_s=(settings.max_sequence_idle_microseconds or DEFAULT_IDLE_US) / 1e6,
            controls=Controls(config),
            max_backlog=_backlog_bound(config),
        )


def _backlog_bound(config: ModelConfig) -> int:
    parameter = config.parameters.get("max_sequence_backlog")
    if parameter is None:
        return DEFAULT_BACKLOG
    text = parameter.string_value.strip()
    if not text.isdigit():
        raise InvalidArgument(
            f"failed to load '{config.name}', parameter max_sequence_backlog must be a "
            f"non-negative integer, not '{text}'"
        )
    return int(text)


def control_inputs(config: ModelConfig) -> dict[str, str]:
    """The control inputs a config declares, by name, with the wire datatype each is fed as."""
    found = {}
    for control_input in config.sequence_batching.control_input:
        for control in control_input.control:
            if control.kind == Control.CONTROL_SEQUENCE_CORRID:
                datatype = from_config(control.data_type)
                wire = datatype.wire if datatype is not None else ""
            elif len(control.int32_false_true) == 2:
                wire = "INT32"
            elif len(control.fp32_false_true) == 2:
                wire = "FP32"
            else:
                wire = "BOOL"
            found[control_input.name] = wire
    return found


class Controls:
    """The control inputs a config declares, as arrays for one request."""

    def __init__(self, config: ModelConfig) -> None:
        self._model = config.name
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

    def check_key(self, key: CorrelationId) -> None:
        """InvalidArgument when ``key`` does not fit the CORRID control input's datatype:
        checked before the request joins a sequence."""
        if self._corrid is None or isinstance(key, str):
            return
        name, data_type = self._corrid
        datatype = from_config(data_type)
        assert datatype is not None  # checked at load
        if datatype.dtype.kind not in "iu":
            return
        info = np.iinfo(datatype.dtype)
        if not info.min <= key <= info.max:
            raise InvalidArgument(
                f"sequence_id {key} does not fit the {datatype.wire} control input '{name}' "
                f"(CORRID) of model '{self._model}'; expected 1..{info.max}"
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
