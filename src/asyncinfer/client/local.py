"""LocalManager: the InferRunner API over engines running in this process.

::

    manager = LocalManager([OnnxEngine("classifier", "model.onnx")], stack_bytes=1 << 20)
    async with manager:                              # starts and stops the engines
        runner = manager.infer_runner("classifier")
        outputs = await runner.infer(features=x)     # {"scores": array}

It has the API of the remote manager, so a service moves a model out of process by changing
the line that builds the manager. Each engine runs behind the inference service's data plane
(a ``LoadedModel`` over it): a call is checked by the same validator, with the same texts, and
counted in the model's statistics as a request over the network would be. With ``stack_bytes``
every call leases a memory stack set (``stacks`` of them, FIFO) that engines write outputs and
staged inputs into; outputs are copied out once before the lease returns, so the arrays a caller
gets own their memory. Without it, engines allocate outputs themselves and nothing is copied.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import numpy.typing as npt

from ..engines.base import Arrays, Engine
from ..errors import ConfigError, NotFound, UsageError
from ..inference.infer_types import InferRequest
from ..inference.model import LoadedModel
from ..inference.repository.loader import engine_model
from ..memory import StackPool
from ..runner import Binding

__all__ = ["LocalInferRunner", "LocalManager"]


class LocalInferRunner:
    """Runs one in-process engine; see :class:`asyncinfer.runner.InferRunner`."""

    def __init__(self, manager: LocalManager, engine: Engine) -> None:
        self._manager = manager
        self._engine = engine

    @property
    def name(self) -> str:
        return self._engine.name

    def input_bindings(self) -> Mapping[str, Binding]:
        return self._engine.input_bindings()

    def output_bindings(self) -> Mapping[str, Binding]:
        return self._engine.output_bindings()

    def infer(self, **inputs: npt.NDArray[Any]) -> asyncio.Future[Arrays]:
        """A future of the outputs; every error, bad input included, comes through it."""
        return asyncio.ensure_future(self._manager._infer(self._engine.name, inputs))

    def infer_threadsafe(self, **inputs: npt.NDArray[Any]) -> concurrent.futures.Future[Arrays]:
        """From another thread: a concurrent future, the call running in the manager's loop."""
        loop = self._manager._loop_or_fail()
        call = self._manager._infer(self._engine.name, inputs)
        return asyncio.run_coroutine_threadsafe(call, loop)

    def __repr__(self) -> str:
        return f"<LocalInferRunner {self.name!r}>"


class LocalManager:
    """Engines in this process behind the Manager API; ``async with`` it, or start()/stop()."""

    def __init__(
        self,
        engines: Iterable[Engine],
        *,
        stack_bytes: int = 0,
        device_stack_bytes: int = 0,
        stacks: int = 4,
        timeout: float | None = None,
    ) -> None:
        self._engines: dict[str, Engine] = {}
        for engine in engines:
            if engine.name in self._engines:
                raise ConfigError(f"two engines are named {engine.name!r}")
            self._engines[engine.name] = engine
        self._stacks = (
            StackPool(
                count=stacks,
                host_bytes=stack_bytes,
                device_bytes=device_stack_bytes,
                name="local-stacks",
                timeout=timeout,
            )
            if stack_bytes
            else None
        )
        if device_stack_bytes and not stack_bytes:
            raise ConfigError("device_stack_bytes needs stack_bytes for the host side")
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started: list[Engine] = []
        #: The data plane of each started engine, by name.
        self._models: dict[str, LoadedModel] = {}

    async def start(self) -> None:
        """Open the stacks and start every engine; on failure, undo what started and re-raise
        (so a later start() begins from scratch)."""
        if self._loop is not None:
            raise UsageError("LocalManager is already started")
        self._loop = asyncio.get_running_loop()
        try:
            if self._stacks is not None:
                self._stacks.open()
            for engine in self._engines.values():
                # Listed before start(): an engine that fails halfway has threads to stop too.
                self._started.append(engine)
                await engine.start()
                self._models[engine.name] = await engine_model(
                    engine, stacks=self._stacks, queue_timeout=self._timeout
                )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop the engines (each drains its calls in flight), then free the stacks."""
        # The data planes hold nothing of their own: the engines and the stacks are ours.
        self._models = {}
        for engine in reversed(self._started):
            await engine.stop()
        self._started = []
        if self._stacks is not None:
            await self._stacks.aclose()
        self._loop = None

    async def __aenter__(self) -> LocalManager:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def get_models(self) -> list[str]:
        return sorted(self._engines)

    def infer_runner(self, name: str, version: str = "") -> LocalInferRunner:
        """The runner of model ``name``; local engines have one version, so ``version`` is
        accepted only when empty or "1"."""
        engine = self._engines.get(name)
        if engine is None:
            raise NotFound(f"model {name!r} is not loaded here; models: {self.get_models()}")
        if version not in ("", "1"):
            raise NotFound(f"model {name!r} has only version 1 here, not {version!r}")
        return LocalInferRunner(self, engine)

    def statistics(self) -> dict[str, Any]:
        stats = {name: engine.statistics() for name, engine in self._engines.items()}
        if self._stacks is not None:
            stats["__stacks__"] = self._stacks.statistics()
        return stats

    def _loop_or_fail(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise UsageError("LocalManager is not started; `async with manager:` first")
        return self._loop

    async def _infer(self, name: str, inputs: Mapping[str, npt.NDArray[Any]]) -> Arrays:
        self._loop_or_fail()
        model = self._models[name]
        return (await model.infer(InferRequest.of_arrays(inputs))).arrays()
