"""PythonEngine: a plain Python/numpy callable behind the Engine protocol.

::

    def model(x: np.ndarray) -> dict[str, np.ndarray]:
        return {"y": x * 2}

    engine = PythonEngine("double", model, inputs=[binding("x", np.float32, (-1, 4))],
                          outputs=[binding("y", np.float32, (-1, 4))], instances=2)

The callable runs on a thread (a PinnedThreadPool when given), so it should spend its time in
code that releases the GIL (numpy). ``instances`` bounds how many calls run at once; with more
than one, the callable must be safe to call from several threads, or pass ``factory`` to build
one object per instance instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._threads import uninterrupted
from ..affinity import CpuSet, PinnedThreadPool
from ..errors import ConfigError, Internal, UsageError
from ..memory import StackSet
from ..pools import Pool
from ..runner import Binding, NamedBindings
from ._limiter import ComputeToken, Limiter, compute_tokens
from .base import Arrays, check_inputs

__all__ = ["PythonEngine"]

ModelFn = Callable[..., Mapping[str, Any]]


class PythonEngine(NamedBindings):
    """Runs ``model(**inputs) -> {name: array}`` with ``instances`` calls at most at once."""

    def __init__(
        self,
        name: str,
        model: ModelFn | None = None,
        *,
        inputs: Sequence[Binding],
        outputs: Sequence[Binding],
        factory: Callable[[], ModelFn] | None = None,
        instances: int = 1,
        threads: PinnedThreadPool | None = None,
        workspaces: Pool[ComputeToken] | Pool[Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        if (model is None) == (factory is None):
            raise ConfigError(f"python engine {name!r}: pass exactly one of model or factory")
        if instances < 1:
            raise ConfigError(f"python engine {name!r}: instances must be >= 1")
        self._name = name
        self._model = model
        self._factory = factory
        self._inputs = {b.name: b for b in inputs}
        self._outputs = {b.name: b for b in outputs}
        self.instances = instances
        self._threads = threads
        self._workspaces = workspaces
        self._timeout = timeout
        self._own_threads: PinnedThreadPool | None = None
        self._limiter: Limiter[ModelFn, Any] | None = None
        self._calls = 0

    async def start(self) -> None:
        if self._factory is not None:
            models = [self._factory() for _ in range(self.instances)]
        else:
            assert self._model is not None
            models = [self._model] * self.instances
        if self._threads is None:
            self._own_threads = PinnedThreadPool(
                CpuSet.current(), name=f"{self._name}-py", max_workers=self.instances
            )
            self._threads = self._own_threads
        workspaces = self._workspaces or compute_tokens(
            self.instances, name=f"{self._name}.compute"
        )
        self._limiter = Limiter(models, workspaces, name=self._name, timeout=self._timeout)

    async def stop(self) -> None:
        """Drain the calls in flight, then stop the threads (off the loop: close() joins them)."""
        if self._limiter is not None:
            await self._limiter.close()
        if self._own_threads is not None:
            threads, self._threads, self._own_threads = self._own_threads, None, None
            await asyncio.to_thread(threads.close)

    async def infer(
        self,
        inputs: Mapping[str, npt.NDArray[Any]],
        *,
        memory: StackSet | None = None,
        queue_timeout: float | None = None,
    ) -> Arrays:
        """Run the model; outputs are the arrays it returned (``memory`` is not used)."""
        limiter = self._started()
        arrays = check_inputs(self.signature(), inputs)
        async with limiter.context(queue_timeout) as ctx, limiter.workspace(queue_timeout):
            result = await self._run(ctx.item, arrays)
        self._calls += 1
        return self._check_outputs(result)

    async def _run(self, model: ModelFn, arrays: Arrays) -> Mapping[str, Any]:
        assert self._threads is not None
        return await uninterrupted(self._threads.run(model, **arrays))

    def _check_outputs(self, result: Mapping[str, Any]) -> Arrays:
        if not isinstance(result, Mapping):
            raise Internal(f"model {self._name!r} returned {type(result).__name__}, not a dict")
        outputs: Arrays = {}
        for name, b in self._outputs.items():
            if name not in result:
                raise Internal(f"model {self._name!r} returned no output {name!r}")
            array = np.asarray(result[name])
            if array.dtype != b.dtype or not b.accepts(array.shape):
                raise Internal(
                    f"model {self._name!r} returned output {name!r} as {array.dtype} "
                    f"{list(array.shape)}; its binding says {b.dtype} {list(b.shape)}"
                )
            outputs[name] = array
        return outputs

    def _started(self) -> Limiter[ModelFn, Any]:
        if self._limiter is None:
            raise UsageError(f"engine {self._name!r} is not started; await engine.start() first")
        return self._limiter

    def statistics(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"calls": self._calls, "instances": self.instances}
        if self._limiter is not None:
            stats.update(self._limiter.statistics())
        return stats
