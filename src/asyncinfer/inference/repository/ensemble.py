"""Ensembles: platform "ensemble" models whose ``ensemble_scheduling`` steps form a DAG of
other loaded models, run in process.

Each step maps composing-model tensor names to ensemble tensor names (``input_map``: model
input -> ensemble tensor it reads; ``output_map``: model output -> ensemble tensor it writes).
At load the plan is checked against the composing models' configs: every tensor a step reads
is an ensemble input or some step's output, no tensor is written twice, the steps form no
cycle, and connected tensors agree in datatype and shape. Any violation fails the load with a
message naming the step and the tensor.

A request runs every step as soon as the tensors it reads exist, so independent steps run
concurrently (one task each, owned by a TaskGroup per request). Each step is a request to its
model's data plane (``LoadedModel.infer``), as an in-process call is: intermediate tensors stay
numpy arrays in this process, and each composing model keeps its own scheduler, instances and
statistics. The first step
to fail cancels the others and fails the request with its error, the step named.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy.typing as npt

from ...datatypes import shape_fits
from ...errors import InvalidArgument, ModelLoadFailed, RpcError, internal_error
from ...pb.inference.model_config_pb2 import ModelConfig
from ...signature import Signature, TensorSpec
from ..infer_types import InferRequest
from ..inprocess import ModelLookup
from ..python_model import Request, Response, Tensor
from ..request_tracing import ChildCall
from .model_config import signature

__all__ = ["ENSEMBLE", "EnsembleBackend", "Step", "composing_models", "plan_steps"]

ENSEMBLE = "ensemble"
Array = npt.NDArray[Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One step: which model, which ensemble tensors it reads and writes."""

    index: int
    model: str
    version: str
    #: composing model input -> ensemble tensor
    inputs: Mapping[str, str]
    #: composing model output -> ensemble tensor
    outputs: Mapping[str, str]

    def __str__(self) -> str:
        return f"step {self.index} (model '{self.model}')"


def composing_models(config: ModelConfig) -> list[str]:
    """The names of the models an ensemble config's steps call, in step order, once each."""
    return list(dict.fromkeys(step.model_name for step in config.ensemble_scheduling.step))


def _steps(config: ModelConfig) -> list[Step]:
    name = config.name
    if not config.ensemble_scheduling.step:
        raise ModelLoadFailed(f"failed to load '{name}', the ensemble has no steps")
    steps = []
    for index, step in enumerate(config.ensemble_scheduling.step):
        if not step.model_name:
            raise ModelLoadFailed(f"failed to load '{name}', ensemble step {index} names no model")
        version = "" if step.model_version < 0 else str(step.model_version)
        steps.append(
            Step(index, step.model_name, version, dict(step.input_map), dict(step.output_map))
        )
    return steps


#: An ensemble tensor's spec, the max_batch_size of its model, and where it comes from.
Source = tuple[TensorSpec, int, str]


def plan_steps(config: ModelConfig, models: ModelLookup) -> list[Step]:
    """The ensemble's steps, checked against its own config and its composing models."""
    name = config.name
    ensemble = signature(config)
    steps = _steps(config)
    composing = {step.index: _composing_signature(name, step, models) for step in steps}
    sources: dict[str, Source] = {
        t: (spec, ensemble.max_batch_size, "ensemble input") for t, spec in ensemble.inputs.items()
    }
    producers = _producers(name, steps, composing, ensemble, sources)
    for step in steps:
        for model_input, tensor in step.inputs.items():
            if tensor not in sources:
                raise ModelLoadFailed(
                    f"failed to load '{name}', ensemble {step} reads tensor '{tensor}' (for "
                    f"its input '{model_input}'), which is neither an ensemble input nor "
                    "written by any step"
                )
            sig = composing[step.index]
            what = f"ensemble {step} reads tensor '{tensor}' as input '{model_input}', which"
            _check_fits(name, what, sources[tensor], sig.inputs[model_input], sig.max_batch_size)
    for output, spec in ensemble.outputs.items():
        if output not in producers:
            raise ModelLoadFailed(
                f"failed to load '{name}', ensemble output '{output}' is not written by any step"
            )
        what = f"ensemble output '{output}'"
        _check_fits(name, what, sources[output], spec, ensemble.max_batch_size)
    _check_acyclic(name, steps, producers)
    return steps


def _composing_signature(name: str, step: Step, models: ModelLookup) -> Signature:
    """The signature of ``step``'s model, which must be loaded, not decoupled, no cycle."""
    _check_not_calling(name, step, models)
    try:
        called = models.get(step.model, step.version)
    except RpcError as exc:
        raise ModelLoadFailed(
            f"failed to load '{name}', ensemble {step}: the model is not available: {exc.message}"
        ) from None
    if called.decoupled:
        raise ModelLoadFailed(
            f"failed to load '{name}', ensemble {step}: model '{step.model}' is decoupled; "
            "an ensemble step takes exactly one response"
        )
    _check_names(name, step, called.signature)
    return called.signature


def _producers(
    name: str,
    steps: list[Step],
    composing: dict[int, Signature],
    ensemble: Signature,
    sources: dict[str, Source],
) -> dict[str, Step]:
    """Which step writes each tensor (adding the written tensors to ``sources``)."""
    producers: dict[str, Step] = {}
    for step in steps:
        sig = composing[step.index]
        for model_output, tensor in step.outputs.items():
            if tensor in ensemble.inputs:
                raise ModelLoadFailed(
                    f"failed to load '{name}', ensemble {step} writes tensor '{tensor}', "
                    "which is an ensemble input"
                )
            if tensor in producers:
                raise ModelLoadFailed(
                    f"failed to load '{name}', ensemble tensor '{tensor}' is written by both "
                    f"{producers[tensor]} and {step}"
                )
            producers[tensor] = step
            sources[tensor] = (sig.outputs[model_output], sig.max_batch_size, f"output of {step}")
    return producers


def _check_not_calling(name: str, step: Step, models: ModelLookup) -> None:
    """A step whose model is this ensemble, or an ensemble that reaches it, is a cycle."""
    path = [step.model]
    pending = [(step.model, step.version, path)]
    while pending:
        model_name, version, path = pending.pop()
        if model_name == name:
            raise ModelLoadFailed(
                f"failed to load '{name}', ensemble {step} calls the ensemble itself "
                f"({' -> '.join([name, *path])}): a cycle"
            )
        try:
            backend = models.get(model_name, version).backend
        except RpcError:
            continue  # not loaded: the step's own lookup says so
        if isinstance(backend, EnsembleBackend):
            pending += [(s.model, s.version, [*path, s.model]) for s in backend.steps]


def _check_names(name: str, step: Step, sig: Signature) -> None:
    for kind, mapping, declared in (
        ("input", step.inputs, sig.inputs),
        ("output", step.outputs, sig.outputs),
    ):
        for tensor in mapping:
            if tensor not in declared:
                raise ModelLoadFailed(
                    f"failed to load '{name}', ensemble {step} maps {kind} '{tensor}', which "
                    f"model '{step.model}' does not have (its {kind}s: {list(declared)})"
                )
    missing = [n for n, spec in sig.inputs.items() if n not in step.inputs and not spec.optional]
    if missing:
        raise ModelLoadFailed(
            f"failed to load '{name}', ensemble {step} does not feed input(s) {missing} of "
            f"model '{step.model}'"
        )


def _check_fits(name: str, what: str, source: Source, need: TensorSpec, need_batch: int) -> None:
    """ModelLoadFailed naming ``what`` (a step's input, or an ensemble output) when the tensor
    ``source`` provides does not have the datatype and shape ``need`` declares."""
    have, have_batch, origin = source
    if have.datatype.wire != need.datatype.wire:
        raise ModelLoadFailed(
            f"failed to load '{name}', {what} is declared {need.datatype.wire}, but the "
            f"{origin} is {have.datatype.wire}"
        )
    have_shape, need_shape = have.shape(have_batch), need.shape(need_batch)
    if not shape_fits(have_shape, need_shape, wildcards_in_shape=True):
        raise ModelLoadFailed(
            f"failed to load '{name}', {what} is declared with shape {list(need_shape)}, but "
            f"the {origin} has shape {list(have_shape)}"
        )


def _check_acyclic(name: str, steps: list[Step], producers: Mapping[str, Step]) -> None:
    """Kahn's algorithm over step -> step edges (through tensors); a leftover step is a cycle."""
    needs = {
        step.index: {producers[t].index for t in step.inputs.values() if t in producers}
        for step in steps
    }
    done: set[int] = set()
    progress = True
    while progress:
        progress = False
        for index, deps in needs.items():
            if index not in done and deps <= done:
                done.add(index)
                progress = True
    stuck = [step for step in steps if step.index not in done]
    if stuck:
        step = stuck[0]
        tensor = next(
            t for t in step.inputs.values() if t in producers and producers[t].index not in done
        )
        raise ModelLoadFailed(
            f"failed to load '{name}', ensemble steps form a cycle: {step} reads tensor "
            f"'{tensor}', which {producers[tensor]} writes only after depending on "
            f"{', '.join(str(s) for s in stuck)}"
        )


class EnsembleBackend:
    """Runs an ensemble's steps on the models of ``models``; a backend like any other."""

    def __init__(
        self, config: ModelConfig, version: int, steps: list[Step], models: ModelLookup
    ) -> None:
        self.name = config.name
        self.version = version
        self._outputs = [tensor.name for tensor in config.output]
        self.steps = steps
        self._models = models

    @classmethod
    def load(cls, config: ModelConfig, version: int, models: ModelLookup | None) -> EnsembleBackend:
        if models is None:
            raise InvalidArgument(
                f"failed to load '{config.name}', an ensemble needs a model repository to find "
                "its steps' models in"
            )
        return cls(config, version, plan_steps(config, models), models)

    @property
    def instance_count(self) -> int:
        return 1  # the composing models have the instances; the ensemble only routes

    async def execute(self, requests: list[Request]) -> list[Response]:
        return [await self._run(request) for request in requests]

    async def unload(self) -> None:
        return None

    async def _run(self, request: Request) -> Response:
        tensors: dict[str, Array] = {t.name: t.as_numpy() for t in request.inputs()}
        waiting = list(self.steps)
        ready = asyncio.Event()
        running: set[int] = set()

        async def run(step: Step) -> None:
            produced = await self._step(step, tensors, request)
            for model_output, tensor in step.outputs.items():
                tensors[tensor] = produced[model_output]
            running.discard(step.index)
            ready.set()

        try:
            # The group owns every step task: the first failure cancels the others (and this
            # body), and nothing outlives the request, cancellation by the client included.
            async with asyncio.TaskGroup() as group:
                while waiting:
                    startable = [s for s in waiting if all(t in tensors for t in s.inputs.values())]
                    for step in startable:
                        waiting.remove(step)
                        running.add(step.index)
                        group.create_task(run(step))
                    if waiting:
                        if not running:  # cannot happen for a checked plan; never hang on it
                            raise InvalidArgument(f"ensemble '{self.name}': steps cannot progress")
                        ready.clear()
                        await ready.wait()
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None  # the failing step's error, step named
        wanted = request.requested_output_names or self._outputs
        return Response([Tensor(name, tensors[name]) for name in self._outputs if name in wanted])

    async def _step(
        self, step: Step, tensors: Mapping[str, Array], request: Request
    ) -> dict[str, Array]:
        inputs = {model_input: tensors[tensor] for model_input, tensor in step.inputs.items()}
        where = f"ensemble '{self.name}' {step}"
        try:
            model = self._models.get(step.model, step.version)
            call = InferRequest.of_arrays(
                inputs, outputs=list(step.outputs), parameters=request.parameters
            )
            with ChildCall(f"ensemble step {step.model}", model, call):
                return (await model.infer(call)).arrays()
        except RpcError as exc:
            raise type(exc)(f"{where} failed: {exc.message}") from None
        except Exception as exc:
            error = internal_error(exc, where)
            raise type(error)(f"{where} failed: {error.message}") from None
