"""Engine backends: repository models run by an asyncinfer Engine (ONNX Runtime, TensorRT).

A model directory whose config.pbtxt says ``platform: "onnxruntime_onnx"`` (or ``backend:
"onnxruntime"``) loads ``<version>/model.onnx`` into an OnnxEngine with one session per
instance (instance_group counts); ``platform: "tensorrt_plan"`` (or ``backend: "tensorrt"``)
loads ``<version>/model.plan`` into a TensorRTEngine with one execution context per instance,
shared workspaces and a pool of pinned + device memory stacks. The config must declare the
inputs and outputs (no auto-completion), and they must match the engine's bindings; so must the
control inputs of ``sequence_batching`` (START, END, READY, CORRID), which the sequence batcher
feeds to the graph as tensors of their declared datatypes, [1] per request.

A batching model (max_batch_size > 0) runs a whole batch of requests in one engine call: the
inputs concatenated along the batch dimension, the outputs split back per request
(scheduling/batch_tensors.py). ONNX Runtime instances are KIND_CPU (or KIND_AUTO): each session
gets its share of this process's CPUs as intra-op threads and runs in a pinned thread, so N
instances are N concurrent executes (ONNX Runtime releases the GIL).

Where TensorRT or CUDA is missing the load fails with a message saying so; the other models of
the repository keep serving.
"""

from __future__ import annotations

import logging
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...datatypes import DATATYPES, from_config, shape_fits
from ...engines import Engine, OnnxEngine, TensorRTEngine
from ...errors import ConfigError, ModelLoadFailed
from ...memory import StackPool
from ...pb.inference.model_config_pb2 import ModelConfig, ModelInput, ModelInstanceGroup
from ..model_files import model_file
from ..python_model import Request, Response, Tensor
from ..scheduling.batch_tensors import merge, same_shapes, split
from ..scheduling.ragged import RaggedBatching
from ..scheduling.scheduler import batch_size_of
from ..scheduling.sequence_policy import control_inputs
from ..statistics import batch_timing
from .base import instance_count

__all__ = ["ENGINE_PLATFORMS", "EngineBackend", "engine_kind"]

#: config platform or backend name -> engine kind
ENGINE_PLATFORMS = {
    "onnxruntime_onnx": "onnxruntime",
    "onnxruntime": "onnxruntime",
    "tensorrt_plan": "tensorrt",
    "tensorrt": "tensorrt",
}
_FILENAMES = {"onnxruntime": "model.onnx", "tensorrt": "model.plan"}
#: Pinned and device bytes per TensorRT request, unless parameters { key: "stack_bytes" } says.
DEFAULT_STACK_BYTES = 16 * 1024 * 1024
log = logging.getLogger("asyncinfer.inference")


def engine_kind(config: ModelConfig) -> str | None:
    """ "onnxruntime" or "tensorrt" when an engine backend serves ``config``, else None."""
    return ENGINE_PLATFORMS.get(config.backend or config.platform)


class EngineBackend:
    """One loaded version of an engine-backed model."""

    def __init__(
        self,
        config: ModelConfig,
        version: int,
        engine: Engine,
        stacks: StackPool | None,
        instances: int,
        *,
        queue_timeout: float | None = None,
    ) -> None:
        self.name = config.name
        self.version = version
        self.engine = engine
        self._stacks = stacks
        self._instances = instances
        #: How long a call may wait for one of the engine's contexts (None: no limit).
        self._queue_timeout = queue_timeout
        self._max_batch_size = config.max_batch_size
        self._batching = config.max_batch_size > 0
        #: allow_ragged_batch inputs (1-D in the graph), batch outputs (scattered back).
        self._ragged = RaggedBatching.from_config(config)
        self._plain = not (self._ragged.ragged or self._ragged.batch_outputs)

    @property
    def instance_count(self) -> int:
        return self._instances

    @classmethod
    async def load(
        cls, config: ModelConfig, version: int, version_dir: pathlib.Path, repository: pathlib.Path
    ) -> EngineBackend:
        """Start the engine for ``version``; ModelLoadFailed says why it could not."""
        name, kind = config.name, engine_kind(config)
        path = model_file(config, version_dir, _FILENAMES[kind or "onnxruntime"])
        if not path.is_file():
            raise ModelLoadFailed(
                f"failed to load '{name}' version {version}: {path} does not exist (the "
                "example repositories' ONNX models are built by `make models`)"
            )
        instances = _instance_count(config, kind)
        try:
            if kind == "tensorrt":
                engine: Engine = TensorRTEngine(name, path, contexts=instances)
                stacks = _stack_pool(config, instances)
            else:
                engine, stacks = OnnxEngine(name, path, instances=instances), None
        except ConfigError as exc:
            raise ModelLoadFailed(f"failed to load '{name}' version {version}: {exc}") from None
        try:
            await _start(engine, stacks)
            _check_signature(config, engine, version)
        except BaseException as exc:
            # Whatever failed (a bad file, a signature mismatch, out of memory, cancellation),
            # an engine that started has threads and sessions: stop it before giving up.
            await _discard(engine, stacks)
            if isinstance(exc, ConfigError):
                message = f"failed to load '{name}' version {version}: {exc}"
                raise ModelLoadFailed(message) from None
            raise
        return cls(config, version, engine, stacks, instances)

    async def execute(self, requests: Sequence[Request]) -> list[Response]:
        """One Response per request, in order; bad input raises the engine's error.

        A batching model runs ``requests`` in one engine call per shape among them (requests
        with variable dims may differ; a sequence batch is formed without looking at them).
        Ragged inputs go to the graph as one 1-D tensor of all their elements, and batch
        outputs are scattered back after the source input's shapes (scheduling/ragged.py).
        """
        if not self._batching or (len(requests) == 1 and self._plain):
            return [_response(await self._infer(_arrays(request))) for request in requests]
        shapes = [_shapes(request) for request in requests]
        arrays = [self._graph_arrays(request) for request in requests]
        sizes = [batch_size_of(request, self._max_batch_size) for request in requests]
        responses: list[Response] = [Response()] * len(requests)
        for indices in same_shapes(arrays):
            parts = await self._infer_batch(
                [arrays[i] for i in indices],
                [sizes[i] for i in indices],
                [shapes[i] for i in indices],
            )
            for index, part in zip(indices, parts, strict=True):
                responses[index] = _response(part)
        return responses

    async def execute_on(self, index: int, requests: list[Request]) -> list[Response]:
        """``execute`` for the sequence batcher, which pins each sequence to an instance: an
        ONNX graph or TensorRT engine keeps no state between calls (its state would be
        inputs), so any session or context serves any sequence."""
        return await self.execute(requests)

    def _graph_arrays(self, request: Request) -> dict[str, Any]:
        arrays = _arrays(request)
        for name in self._ragged.ragged & arrays.keys():
            arrays[name] = arrays[name].reshape(-1)  # the graph takes a ragged input 1-D
        return arrays

    async def _infer_batch(
        self,
        batch: list[dict[str, Any]],
        sizes: list[int],
        shapes: list[dict[str, tuple[int, ...]]],
    ) -> list[dict[str, Any]]:
        """One engine call for requests whose inputs have the same shapes; outputs split back."""
        if len(batch) == 1 and not self._ragged.batch_outputs:
            return [await self._infer(batch[0])]
        timing = batch_timing()
        start = time.perf_counter_ns()
        merged, _ = merge(list(batch[0]), batch, sizes)
        merged_at = time.perf_counter_ns()
        outputs = await self._infer(merged)
        inferred_at = time.perf_counter_ns()
        scattered = self._ragged.scattered
        regular = {name: array for name, array in outputs.items() if name not in scattered}
        parts = split(self.name, regular, sizes)
        if scattered:
            for part, extra in zip(
                parts, self._ragged.scatter(self.name, outputs, shapes), strict=True
            ):
                part.update(extra)
        timing.input_ns += merged_at - start
        timing.output_ns += time.perf_counter_ns() - inferred_at
        return parts

    async def _infer(self, inputs: dict[str, Any]) -> dict[str, Any]:
        timeout = self._queue_timeout
        if self._stacks is None:
            return await self.engine.infer(inputs, queue_timeout=timeout)
        async with self._stacks.acquire(timeout) as lease:
            outputs = await self.engine.infer(inputs, memory=lease.item, queue_timeout=timeout)
            # The reply is encoded after this returns and the stacks reset when the lease does:
            # copy out what lives in them, and drop every view before the lease returns.
            owned = {n: np.array(a) if lease.item.host.owns(a) else a for n, a in outputs.items()}
            del outputs
        return owned

    async def unload(self) -> None:
        """Let the requests in flight finish, then free the memory stacks and stop the engine."""
        if self._stacks is not None:
            await self._stacks.aclose()
        await self.engine.stop()


async def _start(engine: Engine, stacks: StackPool | None) -> None:
    await engine.start()
    if stacks is not None:
        stacks.open()


async def _discard(engine: Engine, stacks: StackPool | None) -> None:
    """Stop a half-loaded engine; a failure here is logged so the load's own error surfaces."""
    try:
        if stacks is not None:
            stacks.close()
        await engine.stop()
    except Exception:
        log.exception("stopping engine %r after its failed load raised", engine.name)


def _arrays(request: Request) -> dict[str, Any]:
    return {tensor.name: tensor.as_numpy() for tensor in request.inputs()}


def _shapes(request: Request) -> dict[str, tuple[int, ...]]:
    return {tensor.name: tuple(tensor.as_numpy().shape) for tensor in request.inputs()}


def _response(outputs: dict[str, Any]) -> Response:
    return Response([Tensor(name, array) for name, array in outputs.items()])


def _instance_count(config: ModelConfig, kind: str | None) -> int:
    """The instance groups' total count; ONNX Runtime instances run on this process's CPUs."""
    if kind == "onnxruntime":
        cpu_kinds = (ModelInstanceGroup.KIND_CPU, ModelInstanceGroup.KIND_AUTO)
        for group in config.instance_group:
            if group.kind not in cpu_kinds:
                raise ModelLoadFailed(
                    f"failed to load '{config.name}': instance_group kind "
                    f"{ModelInstanceGroup.Kind.Name(group.kind)} is not supported by the "
                    "onnxruntime backend here (it runs on the CPU); use KIND_CPU"
                )
    return instance_count(config)


def _stack_pool(config: ModelConfig, instances: int) -> StackPool:
    parameter = config.parameters.get("stack_bytes")
    size = int(parameter.string_value) if parameter is not None else DEFAULT_STACK_BYTES
    return StackPool(
        count=2 * instances, host_bytes=size, device_bytes=size, name=f"{config.name}.stacks"
    )


#: A tensor the graph must have: the config's (or one made for a control or batch input), the
#: graph shape it must have (None: batch + dims; (): any), what it is, and input or output.
_Expected = tuple[Any, tuple[int, ...] | None, str, bool]


def _check_signature(config: ModelConfig, engine: Engine, version: int) -> None:
    batch = (-1,) if config.max_batch_size > 0 else ()
    inputs, outputs = engine.input_bindings(), engine.output_bindings()
    for tensor, shape, kind, is_input in _expected(config):
        binding = (inputs if is_input else outputs).get(tensor.name)
        problem = _mismatch(tensor, binding, batch, kind, shape)
        if problem:
            raise ModelLoadFailed(f"failed to load '{config.name}' version {version}: {problem}")


def _expected(config: ModelConfig) -> list[_Expected]:
    ragged = RaggedBatching.from_config(config)
    # A ragged input reaches the graph as one 1-D tensor of every request's elements; a batch
    # output is the graph's flat output, cut back per request (any shape).
    expected: list[_Expected] = [
        (tensor, (-1,) if tensor.name in ragged.ragged else None, "input", True)
        for tensor in config.input
    ]
    expected += [
        (tensor, () if tensor.name in ragged.scattered else None, "output", False)
        for tensor in config.output
    ]
    # The sequence batcher's control inputs are fed to the graph, [1] each, and so are the
    # batch inputs (1-D; BATCH_ITEM_SHAPE: [items, ndim - 1]).
    for name, wire in control_inputs(config).items():
        if wire in DATATYPES:  # else (a CORRID without a data_type) the batcher refuses it
            control = ModelInput(name=name, data_type=DATATYPES[wire].config, dims=[1])
            expected.append((control, None, "control input", True))
    for spec in ragged.batch_inputs:
        wire = "INT32" if spec.dtype == np.int32 else "FP32"
        target = ModelInput(name=spec.target, data_type=DATATYPES[wire].config)
        expected.append((target, (), "batch input", True))
    return expected


def _mismatch(
    tensor: Any, binding: Any, batch: tuple[int, ...], kind: str, shape: tuple[int, ...] | None
) -> str | None:
    """Why ``binding`` does not fit the config's ``tensor`` ("" fits). ``shape``: the graph
    shape expected instead of batch + dims; () when any shape will do."""
    if binding is None:
        return f"the model file has no {kind} '{tensor.name}' that config.pbtxt declares"
    declared_type = from_config(tensor.data_type)
    datatype = declared_type.wire if declared_type is not None else None
    if datatype != binding.datatype:
        return (
            f"{kind} '{tensor.name}' is {binding.datatype} in the model file, "
            f"{datatype} in config.pbtxt"
        )
    if shape == ():
        return None
    declared = shape if shape is not None else batch + tuple(int(d) for d in tensor.dims)
    # Both sides are patterns here: -1 in the config or in the model file matches any extent.
    if not shape_fits(declared, binding.shape, wildcards_in_shape=True):
        return (
            f"{kind} '{tensor.name}' has shape {list(binding.shape)} in the model file; "
            f"config.pbtxt declares {list(declared)} (batch dimension included)"
        )
    return None
