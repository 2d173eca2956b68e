"""Request plans: what the signature's checks decide about a request's declaration, worked out
once per model and declaration and reused by every request that declares the same.

A request's declaration is the names, datatypes and shapes of its inputs, in order, and the
names of the outputs it asks for. Everything the validator (asyncinfer.signature) decides from
those alone is the same for every request that declares them: that the inputs are the model's
and fit it, the batch size, each fixed-size input's byte size, numpy dtype and shape, the
output plans (outputs.py), and each output's expected datatype and shape. A :class:`PlanCache`
keeps a bounded number of such :class:`RequestPlan` objects per loaded model. A request whose
declaration has a plan skips the checks; its data is still checked (byte sizes) and read as
usual, and a request the plan cannot serve (its data not raw bytes, a byte size that differs)
takes the unplanned path, whose checks give Triton's texts.

Requests whose outputs carry options (classification, shared memory) are planned each time:
their plans hold per-request spans.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..datatypes import BYTES, from_numpy
from ..signature import Signature
from .infer_types import DeclarationKey, InferInput, RequestedOutput
from .outputs import OutputCheck, OutputPlan, plan_outputs

__all__ = ["PLANS_PER_MODEL", "PlanCache", "RawRead", "RequestPlan", "declaration_key"]

#: Declarations remembered per loaded model; a new one past this evicts the oldest.
PLANS_PER_MODEL = 256


@dataclasses.dataclass(frozen=True, slots=True)
class RawRead:
    """How a fixed-size input's raw bytes become its array: their expected size, the dtype
    and the shape of the view."""

    nbytes: int
    dtype: np.dtype[Any]
    shape: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class RequestPlan:
    """What a checked declaration decides. ``reads``: per input in request order, its RawRead
    (None for BYTES, read element by element); ``checks``: per output plan, its expected dtype
    and shape when both are fixed (None: checked in full)."""

    batch_size: int
    reads: tuple[RawRead | None, ...]
    outputs: list[OutputPlan]
    output_names: tuple[str, ...]
    checks: tuple[OutputCheck | None, ...]


def declaration_key(
    inputs: Sequence[InferInput], outputs: Sequence[RequestedOutput]
) -> DeclarationKey | None:
    """The key of a request's declaration; None when its outputs carry options (not planned)."""
    names: tuple[str, ...] = ()
    if outputs:
        requested = []
        for output in outputs:
            if output.class_count is not None or output.shm is not None:
                return None
            requested.append(output.name)
        names = tuple(requested)
    return tuple([(tensor.name, tensor.datatype, tensor.shape) for tensor in inputs]), names


class PlanCache:
    """The plans of one loaded model, by declaration; at most ``capacity`` of them."""

    __slots__ = ("_all_names", "_all_outputs", "_plans", "_signature", "capacity")

    def __init__(
        self, signature: Signature, all_outputs: list[OutputPlan], capacity: int = PLANS_PER_MODEL
    ) -> None:
        self._signature = signature
        self._all_outputs = all_outputs
        self._all_names = tuple(plan.spec.name for plan in all_outputs)
        self._plans: dict[DeclarationKey, RequestPlan] = {}
        self.capacity = capacity

    def __len__(self) -> int:
        return len(self._plans)

    def get(self, key: DeclarationKey) -> RequestPlan | None:
        return self._plans.get(key)

    def plan(
        self,
        inputs: Sequence[InferInput],
        outputs: Sequence[RequestedOutput],
        key: DeclarationKey | None,
    ) -> RequestPlan:
        """Check the declaration (InvalidArgument with Triton's text, as unplanned) and plan
        it; remembered under ``key`` unless that is None."""
        sig = self._signature
        batch_size = sig.check_inputs(inputs)
        reads = tuple(_raw_read(sig, tensor) for tensor in inputs)
        plans = plan_outputs(outputs, sig, self._all_outputs)
        names = self._all_names if plans is self._all_outputs else tuple(p.spec.name for p in plans)
        batched = sig.max_batch_size > 0
        checks = tuple(_output_check(plan, batch_size if batched else None) for plan in plans)
        plan = RequestPlan(batch_size, reads, plans, names, checks)
        if key is not None:
            if len(self._plans) >= self.capacity:
                del self._plans[next(iter(self._plans))]  # the oldest
            self._plans[key] = plan
        return plan


def _raw_read(sig: Signature, tensor: InferInput) -> RawRead | None:
    datatype = sig.inputs[tensor.name].datatype
    if datatype.wire == BYTES:
        return None
    shape = tensor.shape
    return RawRead(int(np.prod(shape, dtype=np.int64)) * datatype.itemsize, datatype.dtype, shape)


def _output_check(plan: OutputPlan, batch_size: int | None) -> OutputCheck | None:
    """The dtype and shape an output must have, when the spec fixes both exactly and the
    dtype stands for its datatype alone (the full check decides otherwise)."""
    spec = plan.spec
    if plan.class_count or spec.datatype.wire == BYTES or -1 in spec.dims:
        return None
    if from_numpy(spec.datatype.dtype) is not spec.datatype:
        return None
    shape = spec.dims if batch_size is None else (batch_size, *spec.dims)
    return OutputCheck(spec.datatype.dtype, shape)
