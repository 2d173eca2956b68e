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
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..datatypes import datatype_of
from ..memory import StackSet
from ..runner import Binding
from ..signature import Signature

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


def check_inputs(signature: Signature, inputs: Mapping[str, object]) -> Arrays:
    """``inputs`` checked against ``signature`` by the one validator (names, datatypes, shapes),
    with the texts the inference service uses; nothing is converted."""
    signature.check_arrays(inputs)
    return cast(Arrays, dict(inputs))
