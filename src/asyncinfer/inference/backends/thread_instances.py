"""Thread instances of python models: import a version's model.py, run its Model instances in
this process, finalize them.

Each configured instance (instance_group count, default 1) is one ``Model`` object; a call
leases one for its execute, so a model's own state is never used by two calls at once.
``async def`` hooks run on the loop; plain ``def`` hooks run in a worker thread, except that a
plain ``def execute`` measured to be quick runs on the loop (model parameter ``sync_execute``:
``"auto"``, the default, or ``"thread"``; the rules are in _inline.py).

The model parameter ``execute_overlap`` (default 1) lets one instance run that many ``async
def execute`` calls at once: a model that awaits a downstream call (another model, a service)
does not hold its instance idle meanwhile. Its own state is then shared by those calls, as in
any asyncio code; a plain ``def execute`` cannot overlap (it would share state across threads).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import inspect
import logging
import pathlib
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..._threads import uninterrupted
from ...errors import ModelLoadFailed, Unavailable
from ...pb.inference.model_config_pb2 import ModelConfig
from ...pools import Handover
from ..inprocess import ModelCaller, ModelLookup
from ..model_files import model_file
from ..python_model import Request, Response
from ._inline import INLINE, LOOP_WAITS, InlinePolicy, blocking_names, run_suspendable, take_waits
from .base import instance_count, mark_cancelled
from .model_module import DEFAULT_FILENAME, import_model, initialize_args, model_class, one_line

__all__ = ["OVERLAP", "SYNC_EXECUTE", "ThreadBackend", "execute_overlap", "inline_policy"]

OVERLAP = "execute_overlap"  # model parameter: async executes per instance at once
SYNC_EXECUTE = "sync_execute"  # model parameter: "auto" (quick ones on the loop) or "thread"

log = logging.getLogger("asyncinfer.inference")


async def _call(hook: Any, *args: Any) -> Any:
    """Await an async hook on the loop; run a plain one in a worker thread.

    A thread cannot be interrupted: a cancelled caller waits for it to end (``uninterrupted``)
    so that the instance it runs on is never handed to another call while it still runs.
    """
    if inspect.iscoroutinefunction(hook):
        return await hook(*args)
    return await uninterrupted(asyncio.to_thread(hook, *args))


class ThreadBackend:
    """One loaded version of a python-backend model, with its pool of Model instances."""

    def __init__(
        self,
        name: str,
        version: int,
        instances: Sequence[Any],
        *,
        decoupled: bool = False,
        overlap: int = 1,
        policy: InlinePolicy | None = None,
    ) -> None:
        self.name = name
        self.version = version
        #: Responses go through each request's ResponseSender; execute returns none.
        self.decoupled = decoupled
        self._instances = list(instances)
        self._idle = _Idle()
        self._closing = False
        self._async_execute = all(
            inspect.iscoroutinefunction(instance.execute) for instance in self._instances
        )
        #: Executes one instance may run at once (execute_overlap); each is one lease of it.
        self._overlap = overlap
        #: Where a plain def execute runs (the loop or a thread); never the loop by default.
        self._policy = policy or InlinePolicy(False, "no policy was given")
        #: The thread of each instance (by id) that runs its plain def executes, made on use.
        self._threads: dict[int, _InstanceThread] = {}
        for _ in range(overlap):
            for instance in self._instances:
                self._idle.give(instance)

    @classmethod
    async def load(
        cls,
        config: ModelConfig,
        version: int,
        version_dir: pathlib.Path,
        repository: pathlib.Path,
        *,
        models: ModelLookup | None = None,
    ) -> ThreadBackend:
        """Import model.py, create and initialize every instance; ModelLoadFailed says why not.

        With ``models``, initialize() finds a ModelCaller in ``args["models"]`` to call other
        loaded models in process.
        """
        name = config.name
        path = model_file(config, version_dir, DEFAULT_FILENAME)
        if not path.is_file():
            raise ModelLoadFailed(
                f"failed to load '{name}' version {version}: {path} does not exist"
            )
        module = await asyncio.to_thread(import_model, path, name, version)
        model_type = model_class(module, path, name, version)
        overlap = execute_overlap(config, model_type)
        policy = inline_policy(config, path)
        args: dict[str, Any] = dict(initialize_args(config, version, repository))
        if models is not None:
            args["models"] = ModelCaller(models)
        instances: list[Any] = []
        try:
            count = instance_count(config)
            # Built in a worker thread: a model's constructor is user code that may be slow,
            # and the loop keeps serving the other models meanwhile.
            instances = await asyncio.to_thread(lambda: [model_type() for _ in range(count)])
            for index, instance in enumerate(instances):
                hook = getattr(instance, "initialize", None)
                if hook is not None:
                    await _call(hook, {**args, "model_instance_name": f"{name}_{index}"})
        except Exception as exc:
            await _finalize_all(instances)
            raise ModelLoadFailed(
                f"failed to load '{name}' version {version}: initialize() raised {one_line(exc)}"
            ) from None
        decoupled = config.model_transaction_policy.decoupled
        return cls(name, version, instances, decoupled=decoupled, overlap=overlap, policy=policy)

    async def execute(self, requests: list[Request]) -> list[Response]:
        """Run the model on ``requests``; one Response each, in order.

        A decoupled model answers through each request's sender and returns None (or a list
        of None); then the result is an empty list.
        """
        if self._closing:
            raise Unavailable(f"model '{self.name}' version {self.version} is being unloaded")
        idle = self._idle
        # take() inline for the usual call (an instance free, nobody waiting): no coroutine.
        instance = (
            idle.free.popleft() if idle.free and not idle.handover.waiters else await idle.take()
        )
        try:
            if self._async_execute:
                responses = await instance.execute(requests)
            else:
                responses = await self._sync_execute(instance, requests)
        finally:
            # Returned on every path, cancellation included; a cancelled sync execute returns
            # it only once its thread has ended (uninterrupted), never while it still runs.
            idle.give(instance)
        if self.decoupled:
            if responses is not None and any(r is not None for r in responses):
                raise TypeError(
                    f"decoupled model '{self.name}' execute() must send its responses through "
                    "request.response_sender() and return None"
                )
            return []
        if type(responses) is list and len(responses) == len(requests):
            return responses[:]  # _check's answer, without the call (the usual execute)
        return self._check(responses, requests)

    def _check(self, responses: Any, requests: list[Request]) -> list[Response]:
        if not isinstance(responses, list | tuple) or len(responses) != len(requests):
            raise TypeError(
                f"model '{self.name}' execute() must return a list of {len(requests)} "
                f"Response objects, got {type(responses).__name__}"
            )
        return list(responses)

    @property
    def instance_count(self) -> int:
        return max(len(self._instances), 1) * self._overlap

    async def execute_on(self, index: int, requests: list[Request]) -> list[Response]:
        """Run ``requests`` on instance ``index``: the sequence batcher pins sequences to
        instances and runs one batch per instance at a time, so the instance is its alone."""
        instance = self._instances[index]
        if self._async_execute:
            responses = await instance.execute(requests)
        else:
            responses = await self._sync_execute(instance, requests)
        return self._check(responses, requests)

    async def _sync_execute(self, instance: Any, requests: list[Request]) -> Any:
        """A plain def execute: on the loop while the policy says so, else in a thread; timed
        either way, for the policy."""
        policy = self._policy
        if policy.inline and policy.suspends:  # in a greenlet, where a sync BLS call waits
            return await run_suspendable(
                policy, instance.execute, requests, lambda: mark_cancelled(requests)
            )
        if policy.inline:
            token = INLINE.set(policy)
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return instance.execute(requests)
            finally:
                policy.ran_inline(time.thread_time() - cpu, time.perf_counter() - wall)
                INLINE.reset(token)
        thread = self._threads.get(id(instance))
        if thread is None:
            thread = self._threads[id(instance)] = _InstanceThread(
                f"{self.name}-{len(self._threads)}"
            )
        return await uninterrupted(
            thread.run(policy, instance.execute, requests),
            on_cancel=lambda: mark_cancelled(requests),
        )

    async def unload(self) -> None:
        """Refuse new calls, wait for the calls in flight to hand their instances back, then
        finalize every instance (never while a call is still using it)."""
        self._closing = True
        for _ in range(len(self._instances) * self._overlap):
            await self._idle.take()
        for thread in self._threads.values():
            thread.stop()
        self._threads.clear()
        await _finalize_all(self._instances)
        self._instances.clear()


class _Idle:
    """The instances free to run an execute, and the calls waiting for one, first come first
    served: a returned instance goes straight to the oldest waiter. Cheaper than an
    asyncio.Queue on every call's path: a free instance is a deque pop, no coroutine."""

    __slots__ = ("free", "handover")

    def __init__(self) -> None:
        self.free: collections.deque[Any] = collections.deque()
        # A waiter cancelled after an instance was handed to it passes the instance on.
        self.handover: Handover[Any] = Handover(self.free.append)

    async def take(self) -> Any:
        """The next instance handed back, in the order the calls began to wait."""
        if self.free and not self.handover.waiters:
            return self.free.popleft()
        return await self.handover.wait()

    def give(self, instance: Any) -> None:
        """Hand ``instance`` to the oldest waiter, or make it free."""
        if not self.handover.hand(instance):
            self.free.append(instance)


class _InstanceThread:
    """The thread that runs one instance's plain def executes, one at a time (the instance is
    leased, so there is never more than one). Cheaper than ``asyncio.to_thread``: no executor
    bookkeeping, one Future, and the thread waits on its own queue."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._serve, name=f"execute-{name}", daemon=True).start()

    def run(
        self, policy: InlinePolicy, execute: Any, requests: list[Request]
    ) -> asyncio.Future[Any]:
        """``execute(requests)`` in the thread, in a copy of the caller's context (as
        ``asyncio.to_thread``); the Future of its result."""
        future = self._loop.create_future()
        self._jobs.put((contextvars.copy_context(), policy, execute, requests, future))
        return future

    def stop(self) -> None:
        self._jobs.put(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._one(*job)
            del job  # nothing of a call outlives it here

    def _one(
        self,
        context: contextvars.Context,
        policy: InlinePolicy,
        execute: Any,
        requests: list[Request],
        future: asyncio.Future[Any],
    ) -> None:
        try:
            result = context.run(_timed, policy, execute, requests)
        except BaseException as exc:  # any: the awaiting call raises it
            self._answer(_set_exception, future, exc)
        else:
            self._answer(_set_result, future, result)

    def _answer(self, how: Any, future: asyncio.Future[Any], value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(how, future, value)


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        if isinstance(exc, StopIteration):  # a Future cannot carry it
            exc = RuntimeError(f"execute() raised {exc!r}")
        future.set_exception(exc)


def _timed(policy: InlinePolicy, execute: Any, requests: list[Request]) -> Any:
    """Run a plain def execute in its thread and tell the policy how long it took, less the
    time it waited for the loop (sync BLS calls)."""
    take_waits()  # none left over from an execute that raised
    cpu, wall = time.thread_time(), time.perf_counter()
    responses = execute(requests)
    ran = time.perf_counter() - wall - take_waits()
    policy.ran_in_thread(time.thread_time() - cpu, ran)
    return responses


def execute_overlap(config: ModelConfig, model_type: type) -> int:
    """The ``execute_overlap`` parameter: async executes one instance runs at once."""
    text = config.parameters[OVERLAP].string_value if OVERLAP in config.parameters else "1"
    where = f"failed to load '{config.name}', parameter '{OVERLAP}'"
    if not text.isdigit() or int(text) < 1:
        raise ModelLoadFailed(f"{where} must be a whole number >= 1, not '{text}'")
    overlap = int(text)
    if overlap > 1 and not inspect.iscoroutinefunction(getattr(model_type, "execute", None)):
        raise ModelLoadFailed(
            f"{where} is {overlap}, but the model's execute is a plain def: only an async def "
            "execute can overlap on one instance"
        )
    if overlap > 1 and config.WhichOneof("scheduling_choice") == "sequence_batching":
        raise ModelLoadFailed(
            f"{where} is {overlap}, but a sequence model's instances each run one batch at a "
            "time; remove one or the other"
        )
    return overlap


def inline_policy(config: ModelConfig, path: pathlib.Path) -> InlinePolicy:
    """The ``sync_execute`` parameter and what model.py calls: may a plain def execute of this
    model run on the loop (_inline.py has the rules)."""
    text = config.parameters[SYNC_EXECUTE].string_value if SYNC_EXECUTE in config.parameters else ""
    mode = text.strip().lower() or "auto"
    if mode not in ("auto", "thread"):
        raise ModelLoadFailed(
            f"failed to load '{config.name}', parameter '{SYNC_EXECUTE}' must be 'auto' or "
            f"'thread', not '{text}'"
        )
    if mode == "thread":
        return InlinePolicy(False, f"parameter '{SYNC_EXECUTE}' is 'thread'")
    if config.model_transaction_policy.decoupled:
        return InlinePolicy(False, "the model is decoupled")
    try:
        names = blocking_names(path)
    except (OSError, SyntaxError, ValueError) as exc:  # it imported, so this is unexpected
        return InlinePolicy(False, f"its code could not be scanned ({one_line(exc)})")
    if names and not names <= LOOP_WAITS:
        return InlinePolicy(False, f"{path.name} uses {', '.join(sorted(names))}")
    # A sync BLS call waits only for the loop's work: on the loop, such executes run in a
    # greenlet, where exec() suspends them instead of blocking the loop.
    return InlinePolicy(True, suspends=bool(names))


async def _finalize_all(instances: Sequence[Any]) -> None:
    for instance in instances:
        hook = getattr(instance, "finalize", None)
        if hook is not None:
            try:
                await _call(hook)
            except Exception:
                log.exception("finalize() of a model instance raised")
