"""The data plane's output stage: which outputs a request gets, each checked against the model's
signature, classified or placed in shared memory when the request asked for that.

``plan_outputs`` turns a request's requested outputs into plans (checked once, before the model
runs); ``respond`` applies them to what the model produced: a missing or mistyped output is the
model's bug (Internal), ``class_count`` turns an output into its top classes (classification.py),
and an output with a shared-memory span is written there once, so front ends send only its
datatype and shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..datatypes import BYTES, serialize_bytes, tensor_bytes
from ..errors import Internal, InvalidArgument
from ..signature import Signature, TensorSpec
from .classification import classify
from .infer_types import OutputTensor, RequestedOutput
from .shared_memory import RequestShm, ShmSpan

__all__ = ["OutputCheck", "OutputPlan", "plan_outputs", "respond"]

Array = npt.NDArray[Any]


@dataclasses.dataclass(slots=True)
class OutputPlan:
    """One output a response carries, in request order: its spec, classification count, and
    the shared memory it is written to (None: sent inline)."""

    spec: TensorSpec
    class_count: int = 0
    shm: ShmSpan | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class OutputCheck:
    """What a planned output must be (plans.py): an array of exactly this dtype and shape
    passes without the full check; anything else gets the full check."""

    dtype: Any
    shape: tuple[int, ...]


def all_outputs(sig: Signature) -> list[OutputPlan]:
    """The plans of a request that names no outputs: every output, in config order (computed
    once per model, at load)."""
    return [OutputPlan(spec) for spec in sig.outputs.values()]


def plan_outputs(
    requested: Sequence[RequestedOutput], sig: Signature, every: list[OutputPlan]
) -> list[OutputPlan]:
    """The outputs to send: those requested, in request order, or ``every`` when none is."""
    if not requested:
        return every
    specs = sig.check_requested(output.name for output in requested)
    plans: list[OutputPlan] = []
    for output, spec in zip(requested, specs, strict=True):
        count = output.class_count
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 1
        ):
            what = f"output '{output.name}' for model '{sig.model}'"
            raise InvalidArgument(f"classification count of {what} must be >= 1, not {count}")
        plans.append(OutputPlan(spec, count or 0, output.shm))
    _check_overlaps(plans, sig.model)
    return plans


def _check_overlaps(plans: list[OutputPlan], model: str) -> None:
    """InvalidArgument when two outputs' shared-memory spans share a byte.

    One sort and one sweep (n log n): a request may name thousands of outputs, and comparing
    every pair would stall the loop.
    """
    spans = sorted(
        (plan.shm.region, plan.shm.offset, index)
        for index, plan in enumerate(plans)
        if plan.shm is not None and plan.shm.byte_size > 0
    )
    reach: tuple[str, int, int] | None = None  # (region, end, index) of the farthest span
    for region, offset, index in spans:
        span = plans[index].shm
        assert span is not None
        if reach is not None and reach[0] == region and offset < reach[1]:
            first, second = sorted((reach[2], index))
            _overlap(plans[second], plans[first], model)
        end = offset + span.byte_size
        if reach is None or reach[0] != region or end > reach[1]:
            reach = (region, end, index)


def _overlap(plan: OutputPlan, other: OutputPlan, model: str) -> None:
    span, earlier = plan.shm, other.shm
    assert span is not None and earlier is not None
    raise InvalidArgument(
        f"output '{plan.spec.name}' for model '{model}': bytes [{span.offset}, "
        f"{span.offset + span.byte_size}) of shared memory region '{span.region}' overlap "
        f"those of output '{other.spec.name}' [{earlier.offset}, "
        f"{earlier.offset + earlier.byte_size})"
    )


def respond(
    produced: Mapping[str, Array],
    plans: list[OutputPlan],
    sig: Signature,
    labels: Mapping[str, Sequence[str]],
    batch_size: int | None,
    shm: RequestShm | None,
    checks: Sequence[OutputCheck | None] = (),
) -> list[OutputTensor]:
    """The response's outputs from what the model ``produced``, one per plan.

    ``batch_size`` is the request's when the model batches (None when it does not).
    ``checks``: per plan, what its array is expected to be (a request plan's); an array that
    is exactly that skips the full check.
    """
    outputs = []
    for index, plan in enumerate(plans):
        name = plan.spec.name
        if name not in produced:
            raise Internal(f"model '{sig.model}' did not produce output '{name}'")
        array = produced[name]
        check = checks[index] if checks else None
        if (
            check is None
            or type(array) is not np.ndarray
            or array.dtype != check.dtype
            or array.shape != check.shape
        ):
            array = sig.check_output(name, array, batch_size)
        datatype = plan.spec.datatype.wire
        if plan.class_count:
            what = f"output '{name}' of model '{sig.model}'"
            batched = batch_size is not None
            array = classify(
                array, plan.class_count, labels.get(name, ()), batched=batched, what=what
            )
            datatype = BYTES
        if plan.shm is not None:
            _place(array, datatype, plan.shm, shm, f"output '{name}' for model '{sig.model}'")
        outputs.append(OutputTensor(name, datatype, array, plan.shm))
    return outputs


def _place(array: Array, datatype: str, span: ShmSpan, shm: RequestShm | None, what: str) -> None:
    """Write an output to its span of shared memory (BYTES in their length-prefixed layout)."""
    if shm is None:
        raise InvalidArgument(
            f"{what} refers to shared memory region '{span.region}', but shared memory is not "
            "available on this call"
        )
    data = serialize_bytes(array) if datatype == BYTES else tensor_bytes(array)
    shm.write_output(span, data, what)
