"""The InferRunner API: one interface for running a model in process or over the network.

A manager lists models and hands out runners; a runner describes its bindings and runs
inference on numpy arrays, returning a future of a dict of arrays::

    manager = LocalManager(...)          # or RemoteManager("127.0.0.1:8001")
    runner = manager.infer_runner("simple")
    runner.input_bindings()              # {"INPUT0": Binding(...), ...}
    outputs = await runner.infer(INPUT0=a, INPUT1=b)

Switching a service from in-process models to a remote inference service is a one-line change:
the manager. Sync flavours return ``concurrent.futures.Future``; asyncio flavours return
``asyncio.Future`` (awaitable).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .datatypes import shape_fits
from .signature import Signature

__all__ = ["Binding", "InferRunner", "Manager", "NamedBindings"]

Outputs = dict[str, npt.NDArray[Any]]


@dataclasses.dataclass(frozen=True, slots=True)
class Binding:
    """One input or output of a model: name, Triton datatype, numpy dtype, shape (-1: any).

    ``shape`` includes the batch dimension as -1 when the model batches.
    """

    name: str
    datatype: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]

    def accepts(self, shape: tuple[int, ...]) -> bool:
        """Whether an array of ``shape`` fits this binding (-1 matches any extent)."""
        return shape_fits(shape, self.shape)


class NamedBindings:
    """The name and binding accessors of an InferRunner or an engine: a subclass sets ``_name``
    and fills ``_inputs``/``_outputs`` (when it starts, or from the server's metadata)."""

    _name: str
    _inputs: dict[str, Binding]
    _outputs: dict[str, Binding]
    _signature: Signature | None = None

    def signature(self) -> Signature:
        """The Signature of the bindings, which every call's inputs are checked against; built
        at its first use, once ``_inputs`` and ``_outputs`` are filled."""
        if self._signature is None:
            self._signature = Signature.of_tensors(
                self._name,
                ((b.name, b.datatype, b.shape) for b in self._inputs.values()),
                ((b.name, b.datatype, b.shape) for b in self._outputs.values()),
            )
        return self._signature

    @property
    def name(self) -> str:
        return self._name

    def input_bindings(self) -> Mapping[str, Binding]:
        return dict(self._inputs)

    def output_bindings(self) -> Mapping[str, Binding]:
        return dict(self._outputs)


class InferRunner(Protocol):
    """Runs one model. ``infer`` checks names, dtypes and shapes against the bindings."""

    @property
    def name(self) -> str: ...

    def input_bindings(self) -> Mapping[str, Binding]: ...

    def output_bindings(self) -> Mapping[str, Binding]: ...

    def infer(self, **inputs: npt.NDArray[Any]) -> Any:
        """A future whose result is a dict of output arrays (``Outputs``)."""
        ...


class Manager(Protocol):
    """Lists models and hands out runners for them."""

    def get_models(self) -> list[str]: ...

    def infer_runner(self, name: str, version: str = "") -> InferRunner: ...
