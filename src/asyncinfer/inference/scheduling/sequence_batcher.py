"""The sequence batcher: routes the requests of stateful models to sequence slots, in order.

A sequence is the run of requests that share a correlation ID (request parameter
``sequence_id``, uint64 or string), from the one flagged ``sequence_start`` to the one flagged
``sequence_end``. Every sequence is pinned to one model instance for its whole life, so a model
may keep per-sequence state in its instance; a slot is that pinning. Each instance has a worker
that forms batches of at most one request per sequence (so a sequence's requests run in
arrival order) and runs them on that instance:

- ``direct``: max(max_batch_size, 1) slots per instance; a batch is formed from whatever slots
  have work, waiting up to ``max_queue_delay_microseconds`` for more.
- ``oldest``: ``max_candidate_sequences`` slots per instance; a batch takes the sequences whose
  next request is oldest, up to max_batch_size, waiting up to ``max_queue_delay_microseconds``.

The batcher fills the control inputs (START, END, READY, CORRID) the config declares
(sequence_policy.py, which reads every setting from the config at load). A
sequence idle for ``max_sequence_idle_microseconds`` loses its slot. A new sequence that finds
every slot busy waits in a backlog, with all the requests it sends meanwhile, and takes the
first slot that frees (oldest first), as in Triton; where Triton's backlog is unbounded, this
one holds at most ``max_sequence_backlog`` sequences (a model config parameter), and a new
sequence past that bound answers UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from typing import Any, Protocol, cast

from ...errors import Internal, InvalidArgument, Unavailable
from ..python_model import Request, Response
from ..statistics import ModelStats, RequestTiming
from .scheduler import batch_size_of
from .sequence_policy import CorrelationId, SequencePolicy, correlation_id, sequence_flag

__all__ = ["PinnableBackend", "SequenceBatcher"]

log = logging.getLogger("asyncinfer.inference")


@dataclasses.dataclass(eq=False, slots=True)
class _Item:
    request: Request
    future: asyncio.Future[Response]
    enqueued: float
    end: bool
    started_ns: int = 0  # perf_counter_ns() when its batch began


@dataclasses.dataclass(eq=False, slots=True)
class _Sequence:
    key: CorrelationId
    #: The instance whose slot it holds; None while it waits in the backlog.
    instance: _Instance | None
    last_seen: float
    pending: collections.deque[_Item] = dataclasses.field(default_factory=collections.deque)
    ended: bool = False  # its END request is queued: no longer reachable by its ID


@dataclasses.dataclass(eq=False)
class _Instance:
    index: int
    slots: int
    active: set[_Sequence] = dataclasses.field(default_factory=set)
    wakeup: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def free(self) -> int:
        return self.slots - len(self.active)


class PinnableBackend(Protocol):
    """A backend that can run a batch on a chosen instance (sequences are pinned to one)."""

    @property
    def instance_count(self) -> int: ...

    async def execute_on(self, index: int, requests: list[Request]) -> list[Response]: ...


class SequenceBatcher:
    """Sequence slots over a model's instances; ``submit`` answers one request of a sequence.

    A Scheduler (scheduler.py) for models with ``sequence_batching``, run by its SequencePolicy.
    """

    def __init__(self, policy: SequencePolicy, backend: object, stats: ModelStats) -> None:
        if not callable(getattr(backend, "execute_on", None)):
            raise InvalidArgument(
                f"failed to load '{policy.model}', its backend cannot pin sequences to "
                "instances, which sequence_batching needs"
            )
        pinnable = cast(PinnableBackend, backend)
        self._stats = stats
        self._batched = policy.batched
        self.model = policy.model
        self.strategy = policy.strategy
        self._controls = policy.controls
        self._max_batch = policy.max_batch
        self._delay = policy.delay_s
        self._preferred = policy.preferred
        self._idle = policy.idle_s
        self._run_on = pinnable.execute_on
        slots = policy.slots_per_instance
        self._instances = [_Instance(i, slots) for i in range(max(pinnable.instance_count, 1))]
        self._by_id: dict[CorrelationId, _Sequence] = {}
        #: Sequences waiting for a slot, oldest first; at most max_backlog.
        self._backlog: collections.deque[_Sequence] = collections.deque()
        self._max_backlog = policy.max_backlog
        self._runner: asyncio.Task[None] | None = None
        #: Set first by stop() (or by a failed runner): submit refuses new requests.
        self._closing = False

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Start the runner (one worker per instance and the idle reaper); stop() ends it."""
        self._runner = asyncio.create_task(self._run_all(), name=f"sequences:{self.model}")

    async def stop(self) -> None:
        """Refuse new requests, end the workers; every request not answered fails."""
        self._closing = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        self._fail_pending(
            Unavailable(f"model '{self.model}' was unloaded while the request waited")
        )

    async def _run_all(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for instance in self._instances:
                    group.create_task(self._worker(instance), name=f"sequences:{self.model}")
                group.create_task(self._reaper(), name=f"sequences:{self.model}:reaper")
        except Exception:
            # A bug here must not leave the sequences' callers waiting forever: fail them,
            # refuse new ones (the TaskGroup has already ended the other workers).
            log.exception("the sequence batcher of model '%s' failed", self.model)
            self._closing = True
            self._fail_pending(Internal(f"the sequence batcher of model '{self.model}' failed"))

    def _fail_pending(self, error: Exception) -> None:
        waiting = [s for instance in self._instances for s in instance.active]
        for sequence in (*waiting, *self._backlog):
            for item in sequence.pending:
                if not item.future.done():
                    item.future.set_exception(error)

    def statistics(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "sequences": len(self._by_id),
            "slots": sum(i.slots for i in self._instances),
            "slots_in_use": sum(len(i.active) for i in self._instances),
            "backlog": len(self._backlog),
        }

    # ------------------------------------------------------------------ requests

    async def submit(
        self,
        request: Request,
        *,
        priority: int = 0,
        timeout_us: int = 0,
        timing: RequestTiming | None = None,
    ) -> Response:
        """Queue ``request`` on its sequence's slot and wait for its Response.

        Sequence requests run in their sequence's order, so priority and timeout do not
        reorder them here.
        """
        if self._closing:
            raise Unavailable(f"model '{self.model}' is being unloaded")
        if batch_size_of(request, 1 if self._batched else 0) > 1:
            raise InvalidArgument(
                f"inference request to model '{self.model}' must specify batch-size 1 due to "
                "requirements of sequence batcher"
            )
        key = correlation_id(request.parameters, self.model)
        self._controls.check_key(key)
        start = sequence_flag(request.parameters, "sequence_start", self.model)
        end = sequence_flag(request.parameters, "sequence_end", self.model)
        sequence = self._sequence_for(key, start)
        for name, array in self._controls.arrays(start=start, end=end, key=key).items():
            request._set_input(name, array)
        now = time.monotonic()
        sequence.last_seen = now
        item = _Item(request, asyncio.get_running_loop().create_future(), now, end)
        sequence.pending.append(item)
        if end:
            # Like Triton: the ID is free for a new sequence as soon as its END is queued;
            # the slot itself frees once that END request has run.
            self._by_id.pop(key, None)
            sequence.ended = True
        if sequence.instance is not None:  # else it runs once the backlog gives it a slot
            sequence.instance.wakeup.set()
        # A caller that goes away cancels its future; the worker skips cancelled items.
        response = await item.future
        if timing is not None:
            timing.compute_start_ns = item.started_ns
        return response

    def _sequence_for(self, key: CorrelationId, start: bool) -> _Sequence:
        sequence = self._by_id.get(key)
        if sequence is not None:
            if start:
                log.warning(
                    "sequence %s for model '%s' has a conflict: the previous sequence did not "
                    "end before this sequence start; the previous sequence is ended early",
                    key,
                    self.model,
                )
            return sequence
        if not start:
            raise InvalidArgument(
                f"inference request for sequence {key} to model '{self.model}' must specify "
                "the START flag on the first request of the sequence"
            )
        best = max(self._instances, key=_Instance.free)
        instance = best if best.free() > 0 and not self._backlog else None
        if instance is None and len(self._backlog) >= self._max_backlog:
            total = sum(i.slots for i in self._instances)
            raise Unavailable(
                f"inference request for sequence {key} to model '{self.model}' cannot "
                f"start: all {total} sequence slots ({self.strategy} strategy) are in use "
                f"and {len(self._backlog)} sequences already wait for one "
                "(max_sequence_backlog); end a sequence or retry later"
            )
        sequence = _Sequence(key, instance, time.monotonic())
        if instance is None:
            self._backlog.append(sequence)
        else:
            instance.active.add(sequence)
        self._by_id[key] = sequence
        return sequence

    def _admit(self, instance: _Instance) -> None:
        """Give the slots ``instance`` has free to the oldest backlogged sequences."""
        while self._backlog and instance.free() > 0:
            sequence = self._backlog.popleft()
            sequence.instance = instance
            instance.active.add(sequence)
            instance.wakeup.set()

    # ------------------------------------------------------------------ workers

    async def _worker(self, instance: _Instance) -> None:
        while True:
            await instance.wakeup.wait()
            instance.wakeup.clear()
            while batch := await self._form_batch(instance):
                await self._run(instance, batch)

    async def _form_batch(self, instance: _Instance) -> list[_Item]:
        """At most one request per sequence, oldest first; waits out the queue delay."""
        while True:
            ready = self._ready(instance)
            full = len(ready) >= self._max_batch or len(ready) in self._preferred
            if not ready or full or self._delay <= 0:
                break
            wait = ready[0][1].enqueued + self._delay - time.monotonic()
            if wait <= 0:
                break
            instance.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await instance.wakeup.wait()
        batch = []
        for sequence, item in ready[: self._max_batch]:
            sequence.pending.popleft()
            batch.append(item)
        return batch

    def _ready(self, instance: _Instance) -> list[tuple[_Sequence, _Item]]:
        """The next request of every sequence that has one, oldest first."""
        self._drop_cancelled(instance)
        heads = [(s, s.pending[0]) for s in instance.active if s.pending]
        return sorted(heads, key=lambda pair: pair[1].enqueued)

    def _drop_cancelled(self, instance: _Instance) -> None:
        # Requests whose caller went away never run; an abandoned END still frees its slot.
        for sequence in list(instance.active):
            while sequence.pending and sequence.pending[0].future.done():
                sequence.pending.popleft()
            self._release_if_done(sequence)

    async def _run(self, instance: _Instance, batch: list[_Item]) -> None:
        started = time.monotonic()
        started_ns = time.perf_counter_ns()
        for item in batch:
            item.started_ns = started_ns
        try:
            responses = await self._run_on(instance.index, [item.request for item in batch])
            if len(responses) != len(batch):
                raise Internal(
                    f"model '{self.model}' returned {len(responses)} responses for a batch of "
                    f"{len(batch)} requests"
                )
            infer_ns = int((time.monotonic() - started) * 1e9)
            self._stats.executed(len(batch), input_ns=0, infer_ns=infer_ns, output_ns=0)
        except asyncio.CancelledError:
            # stop() cancelled this worker mid-batch: its callers must not wait forever.
            failure = Unavailable(f"model '{self.model}' was unloaded while the request ran")
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(failure)
            raise
        except Exception as exc:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
        else:
            for item, response in zip(batch, responses, strict=True):
                if not item.future.done():
                    item.future.set_result(response)
        for sequence in list(instance.active):
            self._release_if_done(sequence)

    def _release_if_done(self, sequence: _Sequence) -> None:
        if sequence.ended and not sequence.pending:
            self._free_slot(sequence)

    def _free_slot(self, sequence: _Sequence) -> None:
        """``sequence`` gives up its slot (or its place in the backlog); the backlog moves up."""
        instance = sequence.instance
        if instance is None:
            if sequence in self._backlog:
                self._backlog.remove(sequence)
            return
        instance.active.discard(sequence)
        self._admit(instance)

    async def _reaper(self) -> None:
        """Free the slots of sequences idle longer than max_sequence_idle_microseconds."""
        while True:
            await asyncio.sleep(min(self._idle, 1.0) / 2)
            now = time.monotonic()
            for key, sequence in list(self._by_id.items()):
                if sequence.pending or now - sequence.last_seen < self._idle:
                    continue
                log.info(
                    "sequence %s of model '%s' was idle for more than %.3f s: its slot is freed",
                    key,
                    self.model,
                    self._idle,
                )
                del self._by_id[key]
                self._free_slot(sequence)
