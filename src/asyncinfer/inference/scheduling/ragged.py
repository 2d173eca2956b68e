"""Ragged batching: ``allow_ragged_batch`` inputs, the ``batch_input`` tensors computed over a
formed batch, and ``batch_output`` tensors scattered back to its requests (Triton's semantics).

A ragged input may differ in shape between the requests of one batch: the dynamic batcher does
not compare it, and an engine backend hands the graph every request's elements concatenated
into one 1-D tensor. Because that tensor no longer says where a request ends, the config may
ask for batch inputs, which the server computes per request from a source input's shape, once
the batch is formed (each request's element count ``e``, its shape, and its batch ``b``):

====================================== =========================================================
kind                                   the request's tensor (the batch's: all of them, in order)
====================================== =========================================================
BATCH_ELEMENT_COUNT                    ``[e]``
BATCH_ACCUMULATED_ELEMENT_COUNT        ``[e_0 + ... + e_i]``
..._WITH_ZERO                          the first request ``[0, e_0]``, the others as above
BATCH_MAX_ELEMENT_COUNT_AS_SHAPE       the first ``max(e)`` elements (zeros), the others none
BATCH_ITEM_SHAPE                       ``[b, ndim - 1]``: each batch item's shape without batch
BATCH_ITEM_SHAPE_FLATTEN               the same values as ``[b * (ndim - 1)]``
====================================== =========================================================

A python model gets each request's own tensor as an input of its request; an ONNX graph gets
the batch's, concatenated, as one input (1-D, or ``[items, ndim - 1]`` for BATCH_ITEM_SHAPE).
A ``BATCH_SCATTER_WITH_INPUT_SHAPE`` output is the graph's one flat output cut back in request
order, each request's part shaped like the output's dims with every -1 taken from the source
input's shape at the same position. Configs are checked at load with Triton's texts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ...datatypes import from_config
from ...errors import Internal, InvalidArgument
from ...pb.inference.model_config_pb2 import BatchInput, BatchOutput, ModelConfig
from ..python_model import Request, Response

__all__ = ["BatchInputSpec", "BatchOutputSpec", "RaggedBatching", "WithBatchInputs"]

Array = npt.NDArray[Any]
_ONE_SOURCE = (
    BatchInput.BATCH_ELEMENT_COUNT,
    BatchInput.BATCH_ACCUMULATED_ELEMENT_COUNT,
    BatchInput.BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO,
    BatchInput.BATCH_MAX_ELEMENT_COUNT_AS_SHAPE,
    BatchInput.BATCH_ITEM_SHAPE,
    BatchInput.BATCH_ITEM_SHAPE_FLATTEN,
)
_DTYPES = {"TYPE_INT32": np.int32, "TYPE_FP32": np.float32}


@dataclasses.dataclass(frozen=True, slots=True)
class BatchInputSpec:
    """One batch input: its kind, the model input it fills, its dtype and its source input."""

    kind: int
    target: str
    dtype: np.dtype[Any]
    source: str


@dataclasses.dataclass(frozen=True, slots=True)
class BatchOutputSpec:
    """One scattered output: its name, its dims with the batch dimension, its source input."""

    target: str
    shape: tuple[int, ...]
    source: str


@dataclasses.dataclass(frozen=True, eq=False)
class RaggedBatching:
    """A model's ragged inputs, batch inputs and batch outputs, checked at load."""

    ragged: frozenset[str] = frozenset()
    batch_inputs: tuple[BatchInputSpec, ...] = ()
    batch_outputs: tuple[BatchOutputSpec, ...] = ()

    @classmethod
    def from_config(cls, config: ModelConfig) -> RaggedBatching:
        """The plan of ``config``; InvalidArgument with Triton's text for a bad one."""
        ragged = frozenset(t.name for t in config.input if t.allow_ragged_batch)
        if not (ragged or config.batch_input or config.batch_output):
            return _NONE
        if config.max_batch_size <= 0:
            raise InvalidArgument(
                f"failed to load '{config.name}', allow_ragged_batch, batch_input and "
                "batch_output need a batching model (max_batch_size > 0)"
            )
        inputs = {t.name for t in config.input}
        outputs = {t.name: t for t in config.output}
        batch_inputs = tuple(
            spec for message in config.batch_input for spec in _batch_input(config, message, inputs)
        )
        batch_outputs = _batch_outputs(config, inputs, outputs)
        return cls(ragged, batch_inputs, batch_outputs)

    @property
    def targets(self) -> tuple[str, ...]:
        """The model inputs the server fills in (none of them comes from a request)."""
        return tuple(spec.target for spec in self.batch_inputs)

    @property
    def scattered(self) -> frozenset[str]:
        return frozenset(spec.target for spec in self.batch_outputs)

    def add_batch_inputs(self, requests: Sequence[Request]) -> None:
        """Give each request of a formed batch its batch inputs (as inputs of the request)."""
        if not self.batch_inputs:
            return
        for spec in self.batch_inputs:
            shapes = [_source_shape(request, spec.source) for request in requests]
            for request, array in zip(requests, _values(spec, shapes), strict=True):
                request._set_input(spec.target, array)

    def scatter(
        self,
        model: str,
        outputs: Mapping[str, Array],
        shapes: Sequence[Mapping[str, tuple[int, ...]]],
    ) -> list[dict[str, Array]]:
        """The batch outputs of one engine call cut per request: request ``i`` (its inputs'
        shapes in ``shapes[i]``) gets its elements, in order, shaped after its source input."""
        parts: list[dict[str, Array]] = [{} for _ in shapes]
        for spec in self.batch_outputs:
            if spec.target not in outputs:
                continue
            flat = outputs[spec.target].reshape(-1)
            offset = 0
            for part, request_shapes in zip(parts, shapes, strict=True):
                source = request_shapes[spec.source]
                shape = tuple(
                    source[i] if want == -1 and i < len(source) else want
                    for i, want in enumerate(spec.shape)
                )
                count = math.prod(shape)
                if offset + count > flat.size:
                    raise Internal(
                        f"model '{model}' returned batch output '{spec.target}' with "
                        f"{flat.size} elements, fewer than its requests' source input "
                        f"'{spec.source}' shapes need"
                    )
                part[spec.target] = flat[offset : offset + count].reshape(shape)
                offset += count
        return parts


_NONE = RaggedBatching()


def _batch_input(config: ModelConfig, message: Any, inputs: set[str]) -> list[BatchInputSpec]:
    name = config.name
    kind_name = BatchInput.Kind.Name(message.kind)
    if message.kind not in _ONE_SOURCE:
        raise InvalidArgument(f"unknown batch input kind '{kind_name}' for {name}")
    if len(message.source_input) != 1:
        raise InvalidArgument(
            f"batch input kind '{kind_name}' expects 1 source input, got "
            f"{len(message.source_input)} for {name}"
        )
    datatype = from_config(message.data_type)
    if datatype is None or datatype.config not in _DTYPES:
        raise InvalidArgument(f"batch input data type must be TYPE_INT32 or TYPE_FP32 for {name}")
    (source,) = message.source_input
    if source not in inputs:
        raise InvalidArgument(f"unknown source input name '{source}' for {name}")
    if not message.target_name:
        raise InvalidArgument(f"batch input kind '{kind_name}' names no target_name for {name}")
    dtype = np.dtype(_DTYPES[datatype.config])
    return [BatchInputSpec(message.kind, target, dtype, source) for target in message.target_name]


def _batch_outputs(
    config: ModelConfig, inputs: set[str], outputs: Mapping[str, Any]
) -> tuple[BatchOutputSpec, ...]:
    name = config.name
    specs = []
    seen: set[str] = set()
    for message in config.batch_output:
        kind_name = BatchOutput.Kind.Name(message.kind)
        if message.kind != BatchOutput.BATCH_SCATTER_WITH_INPUT_SHAPE:
            raise InvalidArgument(f"unknown batch output kind '{kind_name}' for {name}")
        if len(message.source_input) != 1:
            raise InvalidArgument(
                f"batch output kind '{kind_name}' expects 1 source input, got "
                f"{len(message.source_input)} for {name}"
            )
        (source,) = message.source_input
        if source not in inputs:
            raise InvalidArgument(f"unknown source input name '{source}' for {name}")
        for target in message.target_name:
            if target not in outputs:
                raise InvalidArgument(f"unknown target output name '{target}' for {name}")
            if target in seen:
                raise InvalidArgument(
                    f"target output name '{target}' can only be specified once for {name}"
                )
            seen.add(target)
            shape = (-1, *(int(d) for d in outputs[target].dims))
            specs.append(BatchOutputSpec(target, shape, source))
    return tuple(specs)


def _source_shape(request: Request, source: str) -> tuple[int, ...]:
    tensor = request.input(source)
    if tensor is None:
        # An optional source the request left out: it holds no elements.
        return (0,)
    return tuple(int(d) for d in tensor.as_numpy().shape)


def _values(spec: BatchInputSpec, shapes: list[tuple[int, ...]]) -> list[Array]:
    """Each request's tensor of batch input ``spec``, from its source input's shape."""
    counts = [math.prod(shape) for shape in shapes]
    dtype, kind = spec.dtype, spec.kind
    if kind == BatchInput.BATCH_ELEMENT_COUNT:
        return [np.array([count], dtype) for count in counts]
    accumulated = np.cumsum(counts).tolist()
    if kind == BatchInput.BATCH_ACCUMULATED_ELEMENT_COUNT:
        return [np.array([total], dtype) for total in accumulated]
    if kind == BatchInput.BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO:
        values = [np.array([total], dtype) for total in accumulated]
        values[0] = np.array([0, accumulated[0]], dtype)
        return values
    if kind == BatchInput.BATCH_MAX_ELEMENT_COUNT_AS_SHAPE:
        # Only the shape carries the value; Triton leaves the data uninitialized.
        return [np.zeros(max(counts) if i == 0 else 0, dtype) for i in range(len(counts))]
    # One row per batch item: the item's shape without the batch dimension.
    items = [np.tile(np.array(shape[1:], dtype), (shape[0] if shape else 0, 1)) for shape in shapes]
    if kind == BatchInput.BATCH_ITEM_SHAPE:
        return items
    return [item.reshape(-1) for item in items]  # BATCH_ITEM_SHAPE_FLATTEN


class WithBatchInputs:
    """A backend whose every batch gets its batch inputs before it runs (any scheduler)."""

    def __init__(self, backend: Any, plan: RaggedBatching) -> None:
        self._backend = backend
        self._plan = plan
        self.name: str = backend.name
        self.version: int = backend.version

    @property
    def instance_count(self) -> int:
        return int(self._backend.instance_count)

    async def execute(self, requests: list[Request]) -> list[Response]:
        self._plan.add_batch_inputs(requests)
        responses: list[Response] = await self._backend.execute(requests)
        return responses

    async def execute_on(self, index: int, requests: list[Request]) -> list[Response]:
        self._plan.add_batch_inputs(requests)
        responses: list[Response] = await self._backend.execute_on(index, requests)
        return responses

    async def unload(self) -> None:
        await self._backend.unload()
