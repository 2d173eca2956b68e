"""Where a python model's plain ``def execute`` runs: on the event loop ("inline") while it is
measured to be quick, or in a worker thread.

A thread hop costs two thread wake-ups and a GIL hand-off each way, far more than a small
numpy execute itself (tens of microseconds of CPU, and more in latency on a busy machine). So
under the model parameter ``sync_execute: "auto"`` (the default) a version's executes are timed:

- an execute is quick when it used less than :data:`INLINE_BUDGET_S` of CPU time (its
  thread's) and took less than :data:`INLINE_WALL_S` of wall-clock time (a sleep, a wait or
  blocking I/O uses no CPU but would still stall the loop); CPU time, so that a thread the
  OS preempted or one waiting for the GIL is not taken for slow code;
- executes start in worker threads; after :data:`PROMOTE_AFTER` quick ones in a row, the next
  ones run on the loop;
- on the loop, two executes in a row that were not quick, or one that took ten times either
  bound, send the version back to threads (one slow execute alone may be the collector or the
  OS, not the model); the run of quick executes it needs to come back then doubles (up to
  :data:`MAX_PROMOTE_AFTER`), so a model that is only sometimes quick settles in threads, and
  is halved back after :data:`MAX_PROMOTE_AFTER` quick executes on the loop;
- a model that can block on the loop never runs on it: a decoupled model, and one whose
  model.py names a blocking call (:data:`BLOCKING_NAMES`: ``run_coroutine_threadsafe``,
  waits, locks, sleeps; not ``join``, which is mostly ``str.join`` and ``os.path.join``);
- a model whose only such names are a sync BLS call's (:data:`LOOP_WAITS`: pb_utils'
  ``InferenceRequest(...).exec()``) waits only for work the loop itself does, so it may run on
  the loop in a greenlet of its own (:func:`run_suspendable`): ``exec()`` there hands the call
  to the loop and the execute resumes with its answer, with no thread hop either way. Its time
  is what the execute itself ran, without the waits (in threads too: ``exec()`` reports them
  through :func:`note_wait`). A sync BLS ``exec()`` that still reaches the loop outside such a
  greenlet (from a helper module the scan did not see) fails that execute with a clear error
  and moves the version to threads for good; it never hangs.

``sync_execute: "thread"`` keeps every execute in a worker thread. Either way one instance runs
one execute at a time.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import pathlib
import threading
import time
import types
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import greenlet

__all__ = [
    "BLOCKING_NAMES",
    "INLINE",
    "INLINE_BUDGET_S",
    "INLINE_WALL_S",
    "LOOP_WAITS",
    "MAX_PROMOTE_AFTER",
    "InlinePolicy",
    "await_on_loop",
    "blocking_names",
    "note_wait",
    "run_suspendable",
    "suspendable",
    "take_waits",
]

#: The CPU time (seconds) of a quick execute: what one on the loop may cost the other calls.
INLINE_BUDGET_S = 100e-6
#: The wall-clock time (seconds) of a quick execute.
INLINE_WALL_S = 1e-3
#: Quick executes in a row (in threads) before the first move to the loop.
PROMOTE_AFTER = 16
MAX_PROMOTE_AFTER = 4096

#: Names whose use in a model.py (global or attribute names) keeps its executes off the loop:
#: each can wait on something only the loop, or another execute, would provide.
BLOCKING_NAMES = frozenset(
    {
        "InferenceRequest",  # pb_utils BLS: exec() waits for the loop
        "exec",
        "run_coroutine_threadsafe",
        "result",  # concurrent.futures.Future.result()
        "wait",
        "acquire",
        "sleep",
        "Barrier",
        "Condition",
        "Event",
    }
)
#: The :data:`BLOCKING_NAMES` of a sync BLS call, the one wait a greenlet on the loop can serve.
LOOP_WAITS = frozenset({"InferenceRequest", "exec"})


def _names(code: types.CodeType) -> Iterator[str]:
    """The global and attribute names the functions under ``code`` use. Module and class bodies
    are left out: there names are only defined or annotated (``requests:
    list[pb_utils.InferenceRequest]`` names the class, it calls nothing)."""
    if code.co_flags & inspect.CO_OPTIMIZED:  # a function's code (lambdas, comprehensions too)
        yield from code.co_names
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _names(constant)


def blocking_names(path: pathlib.Path) -> frozenset[str]:
    """The :data:`BLOCKING_NAMES` that the functions of ``path`` (a model.py) use, methods,
    nested functions and lambdas included."""
    code = compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    return BLOCKING_NAMES.intersection(_names(code))


class InlinePolicy:
    """Whether the next plain ``def execute`` of one model version runs on the loop (see the
    module's rules); fed the measured time of every execute."""

    __slots__ = (
        "_fast_run",
        "_promote_after",
        "_strikes",
        "allowed",
        "inline",
        "reason",
        "suspends",
    )

    def __init__(self, allowed: bool, reason: str = "", *, suspends: bool = False) -> None:
        #: False: never on the loop (``reason`` says why).
        self.allowed = allowed
        self.reason = reason
        #: On the loop, the execute runs in a greenlet, where a sync BLS call may wait.
        self.suspends = suspends
        self.inline = False
        self._fast_run = 0  # quick executes in a row, in threads or on the loop
        self._strikes = 0  # slow executes in a row on the loop
        self._promote_after = PROMOTE_AFTER

    def ran_in_thread(self, cpu: float, wall: float) -> None:
        """An execute in a worker thread used ``cpu`` seconds of its thread's CPU time and
        took ``wall`` seconds."""
        if not self.allowed:
            return
        if cpu >= INLINE_BUDGET_S or wall >= INLINE_WALL_S:
            self._fast_run = 0
            return
        self._fast_run += 1
        if self._fast_run >= self._promote_after:
            self.inline = True
            self._fast_run = 0
            self._strikes = 0

    def ran_inline(self, cpu: float, wall: float) -> None:
        """An execute on the loop used ``cpu`` seconds of CPU time and took ``wall``."""
        if cpu < INLINE_BUDGET_S and wall < INLINE_WALL_S:
            self._strikes = 0
            self._fast_run += 1
            if self._fast_run >= MAX_PROMOTE_AFTER:
                self._fast_run = 0
                self._promote_after = max(self._promote_after // 2, PROMOTE_AFTER)
            return
        self._strikes += 1
        if self._strikes >= 2 or cpu >= 10 * INLINE_BUDGET_S or wall >= 10 * INLINE_WALL_S:
            self.inline = False
            self._fast_run = 0
            self._promote_after = min(self._promote_after * 2, MAX_PROMOTE_AFTER)

    def forbid(self, reason: str) -> None:
        """Never on the loop again (a blocking call reached it)."""
        self.allowed = False
        self.inline = False
        self.reason = reason


#: The policy of the execute running on the loop right now (None in threads and elsewhere):
#: what a blocking call that reaches the loop tells to stop inlining.
INLINE: contextvars.ContextVar[InlinePolicy | None] = contextvars.ContextVar(
    "asyncinfer_inline_execute", default=None
)


# ---------------------------------------------------------------------- executes that wait


# greenlet has no type stubs: its class is Any to mypy.
class _ExecuteGreenlet(greenlet.greenlet):  # type: ignore[misc]
    """A plain def execute running on the event loop in a greenlet of its own, driven by
    :func:`run_suspendable` (its parent, the loop's greenlet)."""


class _Awaiting:
    """What a :class:`_ExecuteGreenlet` hands its driver: the work it waits for."""

    __slots__ = ("work",)

    def __init__(self, work: Coroutine[Any, Any, Any]) -> None:
        self.work = work


async def run_suspendable(
    policy: InlinePolicy,
    execute: Callable[[Any], Any],
    requests: Any,
    on_cancel: Callable[[], object] | None = None,
) -> Any:
    """``execute(requests)`` on the loop, in a greenlet where :func:`await_on_loop` may wait
    for work on the loop; the policy is told the time the execute itself ran.

    Run in a copy of the caller's context, as a thread's execute is, and in the caller's task.
    When that task is cancelled while the execute waits, the work it waits for is cancelled
    and the wait raises CancelledError in the execute (exec() answers it as a cancelled
    request), ``on_cancel`` runs, and every later wait of that execute raises at once; the
    execute still runs to its end, as in a thread, and then the cancellation propagates. An
    execute is never left suspended halfway with its instance leased.
    """
    context = contextvars.copy_context()
    context.run(INLINE.set, policy)
    runner = _ExecuteGreenlet(execute)
    runner.gr_context = context
    cpu = wall = 0.0
    sent: Any = requests
    error: BaseException | None = None
    cancelled: asyncio.CancelledError | None = None
    try:
        while True:
            started_cpu, started = time.thread_time(), time.perf_counter()
            try:
                asked = runner.switch(sent) if error is None else runner.throw(error)
            except BaseException:
                if cancelled is not None:  # what it raised after its caller went is moot
                    raise cancelled from None
                raise
            finally:
                cpu += time.thread_time() - started_cpu
                wall += time.perf_counter() - started
            if runner.dead:
                if cancelled is not None:
                    raise cancelled
                return asked
            sent, error = None, None
            if cancelled is not None:  # the caller is gone: no more waits
                asked.work.close()
                error = asyncio.CancelledError()
                continue
            try:
                sent = await asked.work
            except asyncio.CancelledError as exc:
                error = exc
                task = asyncio.current_task()
                if task is None or task.cancelling():  # this call's, not the work's own
                    cancelled = exc
                    if on_cancel is not None:
                        on_cancel()
            except BaseException as exc:  # raised where the execute waits: it decides
                error = exc
    finally:
        policy.ran_inline(cpu, wall)


def suspendable() -> bool:
    """Whether this code runs in an execute that :func:`run_suspendable` drives."""
    return type(greenlet.getcurrent()) is _ExecuteGreenlet


def await_on_loop(work: Coroutine[Any, Any, Any]) -> Any:
    """From an execute :func:`run_suspendable` drives (check :func:`suspendable`): suspend it
    until the loop has run ``work``; its result, or its exception raised here."""
    current = greenlet.getcurrent()
    if type(current) is not _ExecuteGreenlet:
        work.close()
        raise RuntimeError("await_on_loop() outside an execute run_suspendable drives")
    return current.parent.switch(_Awaiting(work))


_waits = threading.local()


def note_wait(seconds: float) -> None:
    """An execute in this thread waited ``seconds`` for the loop (a sync BLS call): time the
    policy leaves out of its wall-clock figure."""
    _waits.seconds = getattr(_waits, "seconds", 0.0) + seconds


def take_waits() -> float:
    """The seconds :func:`note_wait` counted in this thread since the last call; resets."""
    seconds: float = getattr(_waits, "seconds", 0.0)
    _waits.seconds = 0.0
    return seconds
