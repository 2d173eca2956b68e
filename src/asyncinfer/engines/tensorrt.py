"""TensorRTEngine: a serialized TensorRT 10 engine behind the Engine protocol.

trtlab's design, on TensorRT 10's Python API:

- the engine is deserialized once; with ``unified_weights=True`` a custom IGpuAllocator puts the
  allocations made during deserialization (the weights) in unified memory (cudaMallocManaged);
- ``contexts`` execution contexts are created without their own device memory
  (ExecutionContextAllocationStrategy.USER_MANAGED), and a pool of ``workspaces`` device blocks
  of ``device_memory_size_v2`` bytes is shared: a context borrows a workspace only for the
  compute, and returns it as soon as the compute has finished on the stream;
- inputs are copied H2D into the lease's device stack on the lease's stream, execute_async_v3
  runs on that stream with tensor addresses from the device stack, and outputs come back D2H
  into the lease's pinned host stack (views valid until the lease returns).

TensorRT cannot be installed on every machine: where it is missing, ``start()`` raises a
ConfigError saying "TensorRT is not installed".
"""

from __future__ import annotations

import asyncio
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _cudart
from .._threads import uninterrupted
from ..affinity import CpuSet, PinnedThreadPool
from ..errors import ConfigError, InvalidArgument, UsageError
from ..memory import DeviceAllocator, MemoryStack, StackSet, Stream
from ..pools import Pool
from ..runner import Binding, NamedBindings
from ._limiter import Limiter
from .base import Arrays, binding, check_inputs

__all__ = ["TensorRTEngine", "tensorrt_available"]


def _trt() -> Any:
    try:
        import tensorrt
    except ImportError:
        raise ConfigError(
            "TensorRT is not installed: the tensorrt backend needs the `tensorrt` package "
            "(TensorRT 10) and an NVIDIA GPU"
        ) from None
    return tensorrt


def tensorrt_available() -> str | None:
    """None when TensorRT and CUDA can be used here, else the reason they cannot."""
    try:
        _trt()
        _cudart.runtime()
    except ConfigError as exc:
        return str(exc)
    return None


def _managed_allocator(trt: Any) -> Any:
    """An IGpuAllocator placing TensorRT's allocations in unified (managed) memory."""
    cudart = _cudart.runtime()

    class ManagedAllocator(trt.IGpuAllocator):  # type: ignore[misc, unused-ignore]
        # pybind11 calls only methods the subclass defines: TensorRT 10 wants all five.
        def __init__(self) -> None:
            trt.IGpuAllocator.__init__(self)

        def allocate(self, size: int, alignment: int, flags: int) -> int | None:
            if size == 0:
                return None
            # cudaMallocManaged aligns to at least 256 bytes, which covers TensorRT's requests.
            return int(
                _cudart.check(
                    cudart.cudaMallocManaged(size, cudart.cudaMemAttachGlobal), "cudaMallocManaged"
                )
            )

        def allocate_async(self, size: int, alignment: int, flags: int, stream: Any) -> int | None:
            return self.allocate(size, alignment, flags)

        def reallocate(self, memory: int, alignment: int, new_size: int) -> None:
            return None  # not supported: TensorRT then allocates anew

        def deallocate(self, memory: int) -> bool:
            _cudart.check(cudart.cudaFree(memory), "cudaFree")
            return True

        def deallocate_async(self, memory: int, stream: Any) -> bool:
            return self.deallocate(memory)

    return ManagedAllocator()


class TensorRTEngine(NamedBindings):
    """A TensorRT plan file served by ``contexts`` execution contexts and shared workspaces."""

    def __init__(
        self,
        name: str,
        plan: str | os.PathLike[str] | bytes,
        *,
        contexts: int = 2,
        workspaces: Pool[Any] | int = 1,
        unified_weights: bool = False,
        cpus: CpuSet | None = None,
        timeout: float | None = None,
    ) -> None:
        if contexts < 1:
            raise ConfigError(f"tensorrt engine {name!r}: contexts must be >= 1")
        self._name = name
        self._plan = plan
        self.contexts = contexts
        self._workspaces_arg = workspaces
        self.unified_weights = unified_weights
        self.cpus = cpus
        self._timeout = timeout
        self._trt: Any = None
        self._engine: Any = None
        self._runtime: Any = None
        self._allocator: Any = None
        self._workspace_memory: list[Any] = []
        self._limiter: Limiter[Any, Any] | None = None
        self._threads: PinnedThreadPool | None = None
        self._inputs: dict[str, Binding] = {}
        self._outputs: dict[str, Binding] = {}
        self._calls = 0

    async def start(self) -> None:
        trt = self._trt = _trt()
        _cudart.runtime()
        self._threads = PinnedThreadPool(
            self.cpus or CpuSet.current(), name=f"{self._name}-trt", max_workers=self.contexts
        )
        self._engine = await self._threads.run(self._deserialize, trt)
        self._describe(trt)
        contexts = [self._context(trt) for _ in range(self.contexts)]
        self._limiter = Limiter(
            contexts, self._make_workspaces(), name=self._name, timeout=self._timeout
        )

    def _deserialize(self, trt: Any) -> Any:
        data = (
            self._plan if isinstance(self._plan, bytes) else pathlib.Path(self._plan).read_bytes()
        )
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if self.unified_weights:
            self._allocator = _managed_allocator(trt)
            self._runtime.gpu_allocator = self._allocator
        engine = self._runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise ConfigError(f"tensorrt engine {self._name!r}: the plan could not be deserialized")
        return engine

    def _describe(self, trt: Any) -> None:
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            shape = tuple(int(d) for d in self._engine.get_tensor_shape(name))
            is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self._inputs if is_input else self._outputs)[name] = binding(name, dtype, shape)

    def _context(self, trt: Any) -> Any:
        strategy = trt.ExecutionContextAllocationStrategy.USER_MANAGED
        context = self._engine.create_execution_context(strategy)
        if context is None:
            raise ConfigError(f"tensorrt engine {self._name!r}: no execution context")
        return context

    def _workspace_bytes(self) -> int:
        size = getattr(self._engine, "device_memory_size_v2", None)
        return int(size if size is not None else self._engine.device_memory_size)

    def _make_workspaces(self) -> Pool[Any]:
        if isinstance(self._workspaces_arg, Pool):
            return self._workspaces_arg
        nbytes = max(self._workspace_bytes(), 256)
        blocks = [DeviceAllocator().allocate(nbytes) for _ in range(self._workspaces_arg)]
        self._workspace_memory = blocks
        return Pool(blocks, name=f"{self._name}.workspaces")

    async def stop(self) -> None:
        """Drain the calls in flight, stop the threads (off the loop), free the workspaces."""
        if self._limiter is not None:
            await self._limiter.close()
        if self._threads is not None:
            await asyncio.to_thread(self._threads.close)
        for block in self._workspace_memory:
            block.free()
        self._workspace_memory = []

    async def infer(
        self,
        inputs: Mapping[str, npt.NDArray[Any]],
        *,
        memory: StackSet | None = None,
        queue_timeout: float | None = None,
    ) -> Arrays:
        """Run on the lease's stream; ``memory`` must hold a device stack and a stream."""
        limiter, threads = self._started()
        arrays = check_inputs(self.signature(), inputs)
        if memory is None or memory.device is None or memory.stream is None:
            raise UsageError(f"tensorrt engine {self._name!r} needs a StackPool with device_bytes")
        device, stream = memory.device, memory.stream
        async with limiter.context(queue_timeout) as ctx:
            context = ctx.item
            self._stage_inputs(context, arrays, memory, stream)
            outputs = self._place_outputs(context, memory.host, device)
            async with limiter.workspace(queue_timeout) as ws:
                await uninterrupted(threads.run(self._compute, context, ws.item, stream))
            # the workspace is free for another context now; the copies below do not need it
            self._fetch_outputs(outputs, stream)
            await uninterrupted(threads.run(stream.synchronize))
        self._calls += 1
        return {name: array for name, (array, _) in outputs.items()}

    def _stage_inputs(self, context: Any, arrays: Arrays, memory: StackSet, stream: Stream) -> None:
        assert memory.device is not None
        for name, array in arrays.items():
            if memory.host.allocation.kind == "pinned" or not array.flags.c_contiguous:
                # one copy into pinned memory makes the H2D copy truly asynchronous
                array = memory.host.copy_in(array)
            region = memory.device.allocate(array.nbytes)
            stream.copy(region.address, array.ctypes.data, array.nbytes, "h2d")
            if not context.set_input_shape(name, array.shape):
                raise InvalidArgument(
                    f"model {self._name!r}: input {name!r} shape {list(array.shape)} is outside "
                    "the engine's optimization profile"
                )
            context.set_tensor_address(name, region.address)

    def _place_outputs(
        self,
        context: Any,
        host: MemoryStack,
        device: MemoryStack,
    ) -> dict[str, tuple[npt.NDArray[Any], int]]:
        outputs = {}
        for name, b in self._outputs.items():
            shape = tuple(int(d) for d in context.get_tensor_shape(name))
            array = host.array(shape, b.dtype)
            region = device.allocate(array.nbytes)
            context.set_tensor_address(name, region.address)
            outputs[name] = (array, region.address)
        return outputs

    def _compute(self, context: Any, workspace: Any, stream: Stream) -> None:
        size = max(self._workspace_bytes(), 256)
        if hasattr(context, "set_device_memory"):
            context.set_device_memory(workspace.address, size)
        else:
            context.device_memory = workspace.address
        if not context.execute_async_v3(stream.handle):
            raise RuntimeError(f"tensorrt engine {self._name!r}: execute_async_v3 failed")
        # The workspace goes back to the pool when this returns: wait until the kernels that
        # use it are done, or the next context would share live scratch memory.
        stream.synchronize()

    def _fetch_outputs(
        self, outputs: dict[str, tuple[npt.NDArray[Any], int]], stream: Stream
    ) -> None:
        for array, device_address in outputs.values():
            stream.copy(array.ctypes.data, device_address, array.nbytes, "d2h")

    def _started(self) -> tuple[Limiter[Any, Any], PinnedThreadPool]:
        if self._limiter is None or self._threads is None:
            raise UsageError(f"engine {self._name!r} is not started; await engine.start() first")
        return self._limiter, self._threads

    def statistics(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"calls": self._calls, "contexts": self.contexts}
        if self._limiter is not None:
            stats.update(self._limiter.statistics())
        return stats
