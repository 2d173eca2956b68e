"""In-process model calls (Triton's "business logic scripting"): the data plane's front end for
python models and Contexts, with no gRPC hop.

    models = ModelCaller(repository)         # a python model gets one as args["models"]
    outputs = await models.infer("simple", {"INPUT0": a, "INPUT1": b})
    outputs["OUTPUT0"]

A call is an InferRequest like any other: checked against the called model's config by the one
validator (a bad input raises InvalidArgument naming the model and tensor, exactly as over the
network), run through the model's own scheduler (its batching and instances), and counted in
its statistics and metrics. A failure inside the called model raises the RpcError it maps to
(Internal for a ModelError), so the caller can catch it and decide: retry another model, answer
partially, or fail. A decoupled model's responses come one by one from ``stream``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

import numpy.typing as npt

from .infer_types import InferRequest
from .model import LoadedModel
from .request_tracing import ChildCall

__all__ = ["ModelCaller", "ModelLookup"]

Array = npt.NDArray[Any]


class ModelLookup(Protocol):
    """What in-process calls need from a repository: the ready version a name refers to."""

    def get(self, name: str, version: str = "") -> LoadedModel: ...

    def is_ready(self, name: str, version: str = "") -> bool: ...


class ModelCaller:
    """The in-process call API handed to python models (``args["models"]``) and Contexts."""

    __slots__ = ("_models",)

    def __init__(self, models: ModelLookup) -> None:
        self._models = models

    async def infer(
        self,
        model_name: str,
        inputs: Mapping[str, npt.ArrayLike],
        *,
        version: str = "",
        outputs: Sequence[str] = (),
        parameters: Mapping[str, Any] | None = None,
    ) -> dict[str, Array]:
        """Outputs of ``model_name`` for ``inputs`` (those named in ``outputs``, or all);
        RpcError (NotFound, InvalidArgument, Internal, ...) when the model is not ready, the
        inputs do not fit, or it fails. Lists of bytes or str become BYTES inputs."""
        model = self._models.get(model_name, version)
        request = InferRequest.of_arrays(inputs, outputs=outputs, parameters=parameters)
        with ChildCall(f"BLS {model_name}", model, request):
            return (await model.infer(request)).arrays()

    async def stream(
        self,
        model_name: str,
        inputs: Mapping[str, npt.ArrayLike],
        *,
        version: str = "",
        outputs: Sequence[str] = (),
        parameters: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[dict[str, Array]]:
        """The outputs of every response of ``model_name`` for ``inputs``: any number for a
        decoupled model (a flags-only final yields nothing), one for any other. A failed
        response raises its RpcError."""
        model = self._models.get(model_name, version)
        request = InferRequest.of_arrays(inputs, outputs=outputs, parameters=parameters)
        with ChildCall(f"BLS {model_name}", model, request):
            async for response in model.stream(request):
                if response.error is not None:
                    raise response.error
                if response.outputs:
                    yield response.arrays()

    def is_ready(self, model_name: str, version: str = "") -> bool:
        return self._models.is_ready(model_name, version)
