"""Engine backends: repository models run by an asyncinfer Engine (ONNX Runtime, TensorRT).

A model directory whose config.pbtxt says ``platform: "onnxruntime_onnx"`` (or ``backend:
"onnxruntime"``) loads ``<version>/model.onnx`` into an OnnxEngine with one session per
instance (instance_group counts); ``platform: "tensorrt_plan"`` (or ``backend: "tensorrt"``)
loads ``<version>/model.plan`` into a TensorRTEngine with one execution context per instance,
shared workspaces and a pool of pinned + device memory stacks. The config must declare the
inputs and outputs (no auto-completion), and they must match the engine's bindings.

Where TensorRT or CUDA is missing the load fails with a message saying so; the other models of
the repository keep serving.
"""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...datatypes import from_config
from ...engines import Engine, OnnxEngine, TensorRTEngine
from ...errors import ConfigError
from ...memory import StackPool
from ...pb.inference.model_config_pb2 import ModelConfig
from ...runner import shape_fits
from ..modelconfig import instance_count
from ..python_model import Request, Response, Tensor
from .python import ModelLoadFailed

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

    def __init__(self, name: str, version: int, engine: Engine, stacks: StackPool | None) -> None:
        self.name = name
        self.version = version
        self.engine = engine
        self._stacks = stacks

    @classmethod
    async def load(
        cls, config: ModelConfig, version: int, version_dir: pathlib.Path, repository: pathlib.Path
    ) -> EngineBackend:
        """Start the engine for ``version``; ModelLoadFailed says why it could not."""
        name, kind = config.name, engine_kind(config)
        path = version_dir / (config.default_model_filename or _FILENAMES[kind or "onnxruntime"])
        if not path.is_file():
            raise ModelLoadFailed(
                f"failed to load '{name}' version {version}: {path} does not exist"
            )
        instances = instance_count(config)
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
        return cls(name, version, engine, stacks)

    async def execute(self, requests: Sequence[Request]) -> list[Response]:
        """One Response per request, in order; bad input raises the engine's error."""
        return [await self._one(request) for request in requests]

    async def _one(self, request: Request) -> Response:
        inputs = {tensor.name: tensor.as_numpy() for tensor in request.inputs()}
        if self._stacks is None:
            outputs = await self.engine.infer(inputs)
            return Response([Tensor(n, a) for n, a in outputs.items()])
        async with self._stacks.acquire() as lease:
            outputs = await self.engine.infer(inputs, memory=lease.item)
            # The reply is encoded after this returns: copy out of the leased stack, and drop
            # the views before the lease returns (its stacks reset then).
            owned = {n: np.array(a) for n, a in outputs.items()}
            del outputs
        return Response([Tensor(n, a) for n, a in owned.items()])

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


def _stack_pool(config: ModelConfig, instances: int) -> StackPool:
    parameter = config.parameters.get("stack_bytes")
    size = int(parameter.string_value) if parameter is not None else DEFAULT_STACK_BYTES
    return StackPool(
        count=2 * instances, host_bytes=size, device_bytes=size, name=f"{config.name}.stacks"
    )


def _check_signature(config: ModelConfig, engine: Engine, version: int) -> None:
    batch = (-1,) if config.max_batch_size > 0 else ()
    for kind, declared, bindings in (
        ("input", config.input, engine.input_bindings()),
        ("output", config.output, engine.output_bindings()),
    ):
        for tensor in declared:
            binding = bindings.get(tensor.name)
            problem = _mismatch(tensor, binding, batch, kind)
            if problem:
                raise ModelLoadFailed(
                    f"failed to load '{config.name}' version {version}: {problem}"
                )


def _mismatch(tensor: Any, binding: Any, batch: tuple[int, ...], kind: str) -> str | None:
    if binding is None:
        return f"the model file has no {kind} '{tensor.name}' that config.pbtxt declares"
    declared_type = from_config(tensor.data_type)
    datatype = declared_type.wire if declared_type is not None else None
    if datatype != binding.datatype:
        return (
            f"{kind} '{tensor.name}' is {binding.datatype} in the model file, "
            f"{datatype} in config.pbtxt"
        )
    declared = batch + tuple(int(d) for d in tensor.dims)
    # Both sides are patterns here: -1 in the config or in the model file matches any extent.
    if not shape_fits(declared, binding.shape, wildcards_in_shape=True):
        return (
            f"{kind} '{tensor.name}' has shape {list(binding.shape)} in the model file; "
            f"config.pbtxt declares {list(declared)} (batch dimension included)"
        )
    return None
