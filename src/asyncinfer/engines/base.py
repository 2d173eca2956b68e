"""The Engine protocol every backend implements, and the input checks they all share.

An engine owns a model's execution resources (sessions, execution contexts, instances) behind
the two-level limiter and runs inference on numpy arrays::

    engine = OnnxEngine("classifier", "model.onnx", instances=2)
    await engine.start()
    outputs = await engine.infer({"features": x}, memory=stack_set)
    await engine.stop()

When ``memory`` (a StackSet lease's item) is given, an engine may place its outputs there; they
are then views valid until that lease returns. Without it, outputs own their memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..datatypes import datatype_of
from ..errors import InvalidArgument
from ..memory import StackSet
from ..runner import Binding

__all__ = ["Arrays", "Engine", "binding", "check_inputs"]

Arrays = dict[str, npt.NDArray[Any]]


def binding(name: str, dtype: npt.DTypeLike, shape: tuple[int, ...]) -> Binding:
    """A Binding from a numpy dtype (its Triton datatype filled in); -1 in shape: any extent."""
    dt = np.dtype(dtype)
    return Binding(name, datatype_of(dt), dt, tuple(int(d) for d in shape))


@runtime_checkable
class Engine(Protocol):
    """A model's runtime: bindings, a start/stop life cycle, and inference on arrays."""

    @property
    def name(self) -> str: ...

    def input_bindings(self) -> Mapping[str, Binding]: ...

    def output_bindings(self) -> Mapping[str, Binding]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def infer(
        self,
        inputs: Mapping[str, npt.NDArray[Any]],
        *,
        memory: StackSet | None = None,
        queue_timeout: float | None = None,
    ) -> Arrays:
        """Outputs by name. Raises InvalidArgument naming the binding on a mismatch."""
        ...

    def statistics(self) -> dict[str, Any]: ...


def check_inputs(
    model: str, bindings: Mapping[str, Binding], inputs: Mapping[str, object]
) -> Arrays:
    """``inputs`` checked against ``bindings``: names, types, dtypes and shapes.

    Every mismatch is an InvalidArgument naming the model, the binding, what came and what was
    expected; nothing is converted silently.
    """
    unknown = sorted(set(inputs) - set(bindings))
    if unknown:
        raise InvalidArgument(
            f"model {model!r} has no input(s) {unknown}; its inputs are {sorted(bindings)}"
        )
    missing = [b for name, b in bindings.items() if name not in inputs]
    if missing:
        b = missing[0]
        raise InvalidArgument(
            f"model {model!r}: input {b.name!r} is missing "
            f"(expected {b.datatype} {list(b.shape)}); missing: {[m.name for m in missing]}"
        )
    return {name: _check_one(model, bindings[name], value) for name, value in inputs.items()}


def _check_one(model: str, b: Binding, value: object) -> npt.NDArray[Any]:
    if not isinstance(value, np.ndarray):
        raise InvalidArgument(
            f"model {model!r}: input {b.name!r} must be a numpy array, not {type(value).__name__}"
        )
    if value.dtype != b.dtype:
        raise InvalidArgument(
            f"model {model!r}: input {b.name!r} has dtype {value.dtype}; "
            f"expected {b.dtype} ({b.datatype})"
        )
    if not b.accepts(value.shape):
        raise InvalidArgument(
            f"model {model!r}: input {b.name!r} has shape {list(value.shape)}; "
            f"expected {list(b.shape)} (-1: any extent)"
        )
    return value
