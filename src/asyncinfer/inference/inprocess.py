"""In-process model calls (Triton's "business logic scripting"): run a loaded model on numpy
arrays, with no gRPC hop, checked and counted as a request from a client would be.

    models = ModelCaller(repository)         # a python model gets one as args["models"]
    outputs = await models.infer("simple", {"INPUT0": a, "INPUT1": b})
    outputs["OUTPUT0"]

Inputs are checked against the called model's config (names, datatypes, shapes, batch size);
a bad input raises InvalidArgument naming the model and tensor, exactly as over the network.
A failure inside the called model raises the RpcError it maps to (Internal for a ModelError),
so the caller can catch it and decide: retry another model, answer partially, or fail. The call
goes through the model's own scheduler (its batching and instances) and appears in its
statistics and metrics. Ensembles run their steps through the same function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..datatypes import from_numpy, shape_fits
from ..errors import InvalidArgument, Unimplemented
from ..signature import Signature, TensorSpec
from .model import LoadedModel, scheduling_parameters
from .scheduling.scheduler import SizedRequest
from .wire.encode import OutputPlan

__all__ = ["ModelCaller", "ModelLookup", "check_inputs", "infer_arrays"]

Array = npt.NDArray[Any]


class ModelLookup(Protocol):
    """What in-process calls need from a repository: the ready version a name refers to."""

    def get(self, name: str, version: str = "") -> LoadedModel: ...

    def is_ready(self, name: str, version: str = "") -> bool: ...


def _check_one(name: str, array: Any, spec: TensorSpec, sig: Signature) -> int | None:
    """The batch size ``array`` carries (None when the model does not batch)."""
    what = f"input '{name}' for model '{sig.model}'"
    if not isinstance(array, np.ndarray):
        raise InvalidArgument(f"{what} must be a numpy array, not {type(array).__name__}")
    datatype = from_numpy(array.dtype)
    got = datatype.wire if datatype is not None else str(array.dtype)
    if got != spec.datatype.wire:
        raise InvalidArgument(f"{what}: expected datatype {spec.datatype.wire}, got {got}")
    shape = tuple(int(d) for d in array.shape)
    if sig.max_batch_size > 0:
        if not shape or not shape_fits(shape[1:], spec.dims):
            raise InvalidArgument(
                f"{what}: unexpected shape {list(shape)}, expected [-1, "
                f"{', '.join(map(str, spec.dims))}] (batch first)"
            )
        if not 1 <= shape[0] <= sig.max_batch_size:
            raise InvalidArgument(
                f"{what}: batch size {shape[0]} is outside 1..{sig.max_batch_size} "
                "(the model's max_batch_size)"
            )
        return shape[0]
    if not shape_fits(shape, spec.dims):
        raise InvalidArgument(f"{what}: unexpected shape {list(shape)}, expected {list(spec.dims)}")
    return None


def check_inputs(inputs: Mapping[str, Any], sig: Signature) -> int:
    """Check ``inputs`` against ``sig``; the request's batch size (1 when not batching)."""
    unknown = sorted(set(inputs) - set(sig.inputs))
    missing = sorted(n for n, spec in sig.inputs.items() if n not in inputs and not spec.optional)
    if unknown or missing:
        raise InvalidArgument(
            f"model '{sig.model}' takes inputs {list(sig.inputs)}; unknown: {unknown}, "
            f"missing: {missing}"
        )
    sizes = {_check_one(n, a, sig.inputs[n], sig) for n, a in inputs.items()} - {None}
    if len(sizes) > 1:
        raise InvalidArgument(
            f"inputs of a request to model '{sig.model}' must have the same batch size, got "
            f"{sorted(s for s in sizes if s is not None)}"
        )
    size = sizes.pop() if sizes else None
    return 1 if size is None else size


async def infer_arrays(
    model: LoadedModel,
    inputs: Mapping[str, Array],
    *,
    outputs: Sequence[str] = (),
    parameters: Mapping[str, Any] | None = None,
    id: str = "",
) -> dict[str, Array]:
    """Run ``model`` on ``inputs``; its outputs (those named in ``outputs``, or all)."""
    sig = model.signature
    unknown = [name for name in outputs if name not in sig.outputs]
    if unknown:
        raise InvalidArgument(
            f"model '{model.name}' has no output(s) {unknown}; its outputs: {list(sig.outputs)}"
        )
    if model.decoupled:
        raise Unimplemented(
            f"model '{model.name}' is decoupled (any number of responses per request); an "
            "in-process call takes exactly one response"
        )
    with model.account() as clock:
        batch_size = check_inputs(inputs, sig)
        wanted = list(outputs) or list(sig.outputs)
        request = SizedRequest(
            inputs,
            batch_size=batch_size,
            requested_output_names=wanted,
            parameters=parameters,
            id=id,
        )
        priority, timeout_us = scheduling_parameters(model.name, request.parameters)
        clock.inputs_done(batch_size)
        response = await model.run(
            request, priority=priority, timeout_us=timeout_us, timing=clock.timing
        )
        clock.computed()
        plans = [OutputPlan(sig.outputs[name]) for name in wanted]
        checked = model.outputs(response, plans, batch_size if sig.max_batch_size > 0 else None)
        return {name: array for name, _, array in checked}


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
        """Outputs of ``model_name`` for ``inputs``; RpcError (NotFound, InvalidArgument,
        Internal, ...) when the model is not ready, the inputs do not fit, or it fails."""
        model = self._models.get(model_name, version)
        arrays = {name: _as_array(value) for name, value in inputs.items()}
        return await infer_arrays(model, arrays, outputs=outputs, parameters=parameters)

    def is_ready(self, model_name: str, version: str = "") -> bool:
        return self._models.is_ready(model_name, version)


def _as_array(value: npt.ArrayLike) -> Array:
    """Lists of bytes/str become BYTES object arrays; other values go through np.asarray."""
    array = np.asarray(value)
    if array.dtype.kind in "SU":
        return array.astype(np.object_)
    return array
