"""The Python model API: what a model.py works with (Request, Response, Tensor, ModelError).

A model is a class named ``Model`` in ``<repository>/<name>/<version>/model.py``::

    import numpy as np
    from asyncinfer.inference.python_model import ModelError, Request, Response, Tensor

    class Model:
        def initialize(self, args: dict[str, str]) -> None:   # optional
            self.config = json.loads(args["model_config"])

        async def execute(self, requests: list[Request]) -> list[Response]:
            responses = []
            for request in requests:
                a = request.input("INPUT0").as_numpy()
                responses.append(Response([Tensor("OUTPUT0", a + 1)]))
            return responses

        def finalize(self) -> None:                            # optional
            ...

``execute`` gets a list of requests and returns one Response per request, in order. A Response
carrying ``error=ModelError("...")`` fails that request only. ``async def execute`` runs on the
server's event loop (right for quick numpy work or awaiting other services); a plain ``def
execute`` runs in a worker thread so that it cannot stall the loop. Input arrays may be
read-only views over the received message: copy before writing into them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["ModelError", "Request", "Response", "Tensor"]


class ModelError(Exception):
    """A per-request failure a model reports; the client sees ``message`` with status INTERNAL."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Tensor:
    """A named numpy array. BYTES tensors are object arrays of ``bytes``."""

    __slots__ = ("_array", "name")

    def __init__(self, name: str, array: npt.ArrayLike) -> None:
        self.name = name
        self._array = np.asarray(array)

    def as_numpy(self) -> npt.NDArray[Any]:
        return self._array

    def __repr__(self) -> str:
        return f"Tensor({self.name!r}, shape={self._array.shape}, dtype={self._array.dtype})"


class Request:
    """One inference request as a model sees it: inputs, requested outputs, parameters, id."""

    __slots__ = ("_inputs", "id", "parameters", "requested_output_names")

    def __init__(
        self,
        inputs: Mapping[str, npt.NDArray[Any]],
        *,
        requested_output_names: Sequence[str] = (),
        parameters: Mapping[str, Any] | None = None,
        id: str = "",
    ) -> None:
        self._inputs = {name: Tensor(name, array) for name, array in inputs.items()}
        #: Names of the outputs the client asked for; all outputs are computed either way.
        self.requested_output_names = tuple(requested_output_names)
        self.parameters: Mapping[str, Any] = dict(parameters or {})
        self.id = id

    def input(self, name: str) -> Tensor | None:
        """The input called ``name``, or None when the request does not carry it (optional)."""
        return self._inputs.get(name)

    def inputs(self) -> list[Tensor]:
        return list(self._inputs.values())


class Response:
    """The outputs for one request, or the error that failed it."""

    __slots__ = ("error", "output_tensors")

    def __init__(
        self, output_tensors: Iterable[Tensor] = (), error: ModelError | None = None
    ) -> None:
        self.output_tensors = list(output_tensors)
        self.error = error

    def outputs(self) -> dict[str, npt.NDArray[Any]]:
        return {tensor.name: tensor.as_numpy() for tensor in self.output_tensors}
