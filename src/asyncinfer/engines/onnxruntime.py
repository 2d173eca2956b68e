"""OnnxEngine: ONNX Runtime sessions behind the Engine protocol, the CPU default.

``instances`` sessions are created at start; each gets its own intra-op threads pinned to its
share of ``cpus`` (the CPU set is split between instances). Calls run on ``threads`` (a
PinnedThreadPool the caller owns) or on one the engine makes over all of ``cpus``. When a
memory lease is given and every output shape can be derived from the inputs (symbolic
dimensions such as "batch" shared with an input), outputs are written straight into the
lease's host stack through an IOBinding: no allocation per call. BYTES tensors reach the
graph's string tensors byte-exact and come back byte-exact (_ort_strings.py says how).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .._threads import uninterrupted
from ..affinity import CpuSet, PinnedThreadPool
from ..errors import ConfigError, InvalidArgument, UsageError
from ..memory import StackSet
from ..pools import Pool
from ..runner import Binding, NamedBindings
from ._limiter import ComputeToken, Limiter, compute_tokens
from ._ort_strings import strings_in
from .base import Arrays, binding, check_inputs

__all__ = ["OnnxEngine"]

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}

Dims = list[int | str | None]


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("ONNX Runtime is not installed: pip install 'asyncinfer[onnx]'") from None
    return onnxruntime


class OnnxEngine(NamedBindings):
    """An ONNX model (path or serialized bytes) served by ``instances`` ORT sessions."""

    def __init__(
        self,
        name: str,
        model: str | os.PathLike[str] | bytes,
        *,
        instances: int = 1,
        cpus: CpuSet | None = None,
        threads: PinnedThreadPool | None = None,
        workspaces: Pool[ComputeToken] | Pool[Any] | None = None,
        spin: bool = False,
        timeout: float | None = None,
    ) -> None:
        if instances < 1:
            raise ConfigError(f"onnx engine {name!r}: instances must be >= 1")
        self._name = name
        self._model = model
        self.instances = instances
        self.cpus = cpus
        self._spin = spin
        self._workspaces = workspaces
        self._timeout = timeout
        self._threads: PinnedThreadPool | None = threads
        self._own_threads = threads is None
        self._limiter: Limiter[Any, Any] | None = None
        self._inputs: dict[str, Binding] = {}
        self._outputs: dict[str, Binding] = {}
        self._input_dims: dict[str, Dims] = {}
        self._output_dims: dict[str, Dims] = {}
        #: The string (BYTES) inputs and outputs: converted to and from ORT's str elements.
        self._string_inputs: tuple[str, ...] = ()
        self._string_outputs: tuple[str, ...] = ()
        self._calls = self._in_place = 0

    async def start(self) -> None:
        ort = _ort()
        cpus = self.cpus if self.cpus is not None else CpuSet.current()
        if self._threads is None:
            self._threads = PinnedThreadPool(
                cpus, name=f"{self._name}-ort", max_workers=self.instances
            )
        parts = (
            cpus.split(self.instances) if len(cpus) >= self.instances else [cpus] * self.instances
        )
        # Loading parses and optimizes the graph: seconds for big models, so off the loop.
        sessions = [await self._threads.run(self._session, ort, part) for part in parts]
        self._describe(sessions[0])
        workspaces = self._workspaces or compute_tokens(
            self.instances, name=f"{self._name}.compute"
        )
        self._limiter = Limiter(sessions, workspaces, name=self._name, timeout=self._timeout)

    def _session(self, ort: Any, cpus: CpuSet) -> Any:
        options = ort.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = len(cpus)
        if len(cpus) > 1:
            # ORT pins the intra-op threads it creates (all but the calling thread, which our
            # pool pins); it numbers logical processors from 1.
            affinities = ";".join(str(cpu + 1) for cpu in list(cpus)[1:])
            options.add_session_config_entry("session.intra_op_thread_affinities", affinities)
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if self._spin else "0"
        )
        model = self._model if isinstance(self._model, bytes) else os.fspath(self._model)
        try:
            return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ConfigError(f"onnx engine {self._name!r} cannot load its model: {exc}") from None

    def _describe(self, session: Any) -> None:
        for args, bindings, dims in (
            (session.get_inputs(), self._inputs, self._input_dims),
            (session.get_outputs(), self._outputs, self._output_dims),
        ):
            for arg in args:
                if arg.type not in _ORT_TYPES:
                    raise ConfigError(f"model {self._name!r}: {arg.name} has type {arg.type}")
                shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
                bindings[arg.name] = binding(arg.name, _ORT_TYPES[arg.type], shape)
                dims[arg.name] = list(arg.shape)
        strings = "tensor(string)"
        self._string_inputs = tuple(a.name for a in session.get_inputs() if a.type == strings)
        self._string_outputs = tuple(a.name for a in session.get_outputs() if a.type == strings)

    async def stop(self) -> None:
        """Drain the calls in flight, then stop the threads (off the loop: close() joins them)."""
        if self._limiter is not None:
            await self._limiter.close()
        if self._threads is not None and self._own_threads:
            threads, self._threads = self._threads, None
            await asyncio.to_thread(threads.close)

    async def infer(
        self,
        inputs: Mapping[str, npt.NDArray[Any]],
        *,
        memory: StackSet | None = None,
        queue_timeout: float | None = None,
    ) -> Arrays:
        """Outputs by name; views into ``memory.host`` when it is given and shapes allow."""
        limiter, threads = self._started()
        arrays = check_inputs(self.signature(), inputs)
        symbols = self._symbols(arrays)
        strings = self._string_inputs or self._string_outputs
        shapes = self._output_shapes(symbols) if memory is not None and not strings else None
        if strings:
            arrays, call = strings_in(arrays, self._string_inputs)
        async with limiter.context(queue_timeout) as ctx, limiter.workspace(queue_timeout):
            if memory is not None and shapes is not None:
                outputs = self._place_outputs(memory, shapes)
                arrays = {n: _contiguous(a, memory) for n, a in arrays.items()}
                await uninterrupted(threads.run(self._run_bound, ctx.item, arrays, outputs))
                self._in_place += 1
            else:
                outputs = await uninterrupted(threads.run(self._run, ctx.item, arrays))
        self._calls += 1
        return call.strings_out(outputs, self._string_outputs) if strings else outputs

    def _symbols(self, arrays: Arrays) -> dict[str, int]:
        """Extents of the model's symbolic dimensions ("batch"), checked across inputs."""
        symbols: dict[str, int] = {}
        owners: dict[str, str] = {}
        for name, dims in self._input_dims.items():
            for dim, extent in zip(dims, arrays[name].shape, strict=True):
                if not isinstance(dim, str):
                    continue
                if symbols.setdefault(dim, extent) != extent:
                    raise InvalidArgument(
                        f"model {self._name!r}: inputs {owners[dim]!r} and {name!r} disagree on "
                        f"dimension {dim!r} ({symbols[dim]} vs {extent}); it must be equal"
                    )
                owners.setdefault(dim, name)
        return symbols

    def _output_shapes(self, symbols: dict[str, int]) -> dict[str, tuple[int, ...]] | None:
        shapes = {}
        for name, dims in self._output_dims.items():
            shape = [
                d if isinstance(d, int) else symbols.get(d) if isinstance(d, str) else None
                for d in dims
            ]
            if any(extent is None or extent < 0 for extent in shape):
                return None  # not derivable from the inputs: let ORT allocate this call
            shapes[name] = tuple(int(e) for e in shape)  # type: ignore[arg-type]
        return shapes

    def _place_outputs(self, memory: StackSet, shapes: dict[str, tuple[int, ...]]) -> Arrays:
        return {
            name: memory.host.array(shape, self._outputs[name].dtype)
            for name, shape in shapes.items()
        }

    def _run(self, session: Any, arrays: Arrays) -> Arrays:
        names = list(self._outputs)
        try:
            values = session.run(names, arrays)
        except UnicodeError as exc:  # an in-process str element that is no text (a surrogate)
            raise InvalidArgument(
                f"model {self._name!r}: a string input is not text: {exc}"
            ) from None
        except Exception as exc:
            raise self._rejected(exc) from None
        return dict(zip(names, values, strict=True))

    def _run_bound(self, session: Any, arrays: Arrays, outputs: Arrays) -> None:
        io = session.io_binding()
        for name, array in arrays.items():
            io.bind_cpu_input(name, array)
        for name, out in outputs.items():
            io.bind_output(name, "cpu", 0, out.dtype, out.shape, out.ctypes.data)
        try:
            session.run_with_iobinding(io)
        except Exception as exc:
            raise self._rejected(exc) from None

    def _rejected(self, exc: Exception) -> Exception:
        # ORT reports bad input (dimensions it checks beyond our bindings, such as a batch
        # extent two inputs disagree on) as INVALID_ARGUMENT; anything else is unexpected.
        if "INVALID_ARGUMENT" in str(exc):
            return InvalidArgument(f"model {self._name!r} rejected its inputs: {exc}")
        return exc

    def _started(self) -> tuple[Limiter[Any, Any], PinnedThreadPool]:
        if self._limiter is None or self._threads is None:
            raise UsageError(f"engine {self._name!r} is not started; await engine.start() first")
        return self._limiter, self._threads

    def statistics(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"calls": self._calls, "outputs_in_place": self._in_place}
        if self._limiter is not None:
            stats.update(self._limiter.statistics())
        return stats


def _contiguous(array: npt.NDArray[Any], memory: StackSet) -> npt.NDArray[Any]:
    # ORT binds C-contiguous buffers; a strided input is staged once in the lease's stack.
    return array if array.flags.c_contiguous else memory.host.copy_in(array)
