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
  model.py names a blocking call (:data:`BLOCKING_NAMES`: sync BLS ``InferenceRequest.exec``,
  ``run_coroutine_threadsafe``, waits, locks, sleeps; not ``join``, which is mostly
  ``str.join`` and ``os.path.join``). A sync BLS ``exec()`` that still reaches the loop (from
  a helper module the scan did not see) fails that execute with a clear error and moves the
  version to threads for good; it never hangs.

``sync_execute: "thread"`` keeps every execute in a worker thread. Either way one instance runs
one execute at a time.
"""

from __future__ import annotations

import contextvars
import inspect
import pathlib
import types
from collections.abc import Iterator

__all__ = [
    "BLOCKING_NAMES",
    "INLINE",
    "INLINE_BUDGET_S",
    "INLINE_WALL_S",
    "MAX_PROMOTE_AFTER",
    "InlinePolicy",
    "blocking_names",
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

    __slots__ = ("_fast_run", "_promote_after", "_strikes", "allowed", "inline", "reason")

    def __init__(self, allowed: bool, reason: str = "") -> None:
        #: False: never on the loop (``reason`` says why).
        self.allowed = allowed
        self.reason = reason
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
