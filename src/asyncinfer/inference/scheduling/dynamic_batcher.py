"""The dynamic batcher: Triton's dynamic_batching scheduler for one loaded model version.

Requests wait in one queue per priority level. Whenever one of the backend's instances is free,
the batcher forms a batch from the head of the queues (most urgent level first; within a level,
requests past a DELAY timeout after the others), taking requests in order while their non-batch
shapes match the first one's and the total stays within max_batch_size. It runs the batch at
once when it is full, reaches a preferred size, cannot grow (the next request does not fit, or
would take it past the largest preferred size), is at least the largest preferred size, or the
oldest request has waited max_queue_delay; otherwise it waits for more requests until then.
Requests pile up while every instance is busy, which is what makes batches under load.

The batcher's tasks live in a TaskGroup it owns; ``stop`` lets running batches finish and fails
the requests still queued. A request whose caller is gone before its batch forms is dropped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Iterator

from ...errors import DeadlineExceeded, Internal, Unavailable
from ..backends.base import Backend
from ..python_model import Request, Response
from ..statistics import ModelStats, RequestTiming, measure_batch
from .queue_policy import BatchingPolicy, QueuePlacement
from .scheduler import batch_size_of, deadline_of, record_execution

__all__ = ["DynamicBatcher", "shape_key"]

log = logging.getLogger("asyncinfer.inference")

ShapeKey = tuple[tuple[str, tuple[int, ...]], ...]


def shape_key(request: Request, ragged: frozenset[str] = frozenset()) -> ShapeKey:
    """What must match for two requests to share a batch: input names and non-batch shapes
    (a ``ragged`` input's shape may differ: allow_ragged_batch)."""
    return tuple(
        sorted(
            (t.name, () if t.name in ragged else tuple(t.as_numpy().shape[1:]))
            for t in request.inputs()
        )
    )


class _Entry:
    """One queued request and the future its caller awaits."""

    __slots__ = (
        "deadline_ns",
        "delay_on_timeout",
        "enqueued_ns",
        "expires",
        "future",
        "key",
        "level",
        "request",
        "result",
        "size",
        "taken_ns",
    )

    def __init__(
        self,
        request: Request,
        size: int,
        level: int,
        deadline_ns: int,
        delay_on_timeout: bool,
        ragged: frozenset[str],
    ) -> None:
        self.request = request
        self.size = size
        self.level = level
        self.key = shape_key(request, ragged)
        self.future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.enqueued_ns = time.perf_counter_ns()
        self.deadline_ns = deadline_ns  # 0: no timeout
        self.expires = deadline_of(request)  # the caller's deadline (time.monotonic())
        self.delay_on_timeout = delay_on_timeout
        self.taken_ns = 0  # when a batch took it; 0: not taken
        # The outcome, held back while preserve_ordering waits for earlier requests.
        self.result: Response | BaseException | None = None

    @property
    def waiting(self) -> bool:
        """Still to be batched: not taken, and its caller has not gone (nor timed out)."""
        return not self.taken_ns and not self.future.done()


class DynamicBatcher:
    """Queues requests per priority level and runs them on the backend in batches."""

    def __init__(self, policy: BatchingPolicy, backend: Backend, stats: ModelStats) -> None:
        self.policy = policy
        self._backend = backend
        self._stats = stats
        levels = len(self.policy.levels)
        self._queues: list[collections.deque[_Entry]] = [collections.deque() for _ in range(levels)]
        self._waiting = [0] * levels  # waiting entries per level, for max_queue_size
        # Per level, requests past a DELAY timeout: they run after the requests of their own
        # level that are still within theirs, and before any less urgent level.
        self._delayed: list[collections.deque[_Entry]] = [
            collections.deque() for _ in range(levels)
        ]
        self._order: collections.deque[_Entry] = collections.deque()  # for preserve_ordering
        self._arrived = asyncio.Event()
        self._free = asyncio.Semaphore(backend.instance_count)
        # Whether any request can have a DELAY timeout: else there is nothing to expire.
        self._delays = any(level.delay_on_timeout for level in self.policy.levels)
        self._closing = False
        self._runner: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.policy.model

    def queued(self) -> int:
        """Requests waiting to be batched, over all levels."""
        return sum(self._waiting)

    async def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name=f"batcher:{self.name}")

    async def stop(self) -> None:
        """Running batches finish; queued requests fail with UNAVAILABLE."""
        self._closing = True
        self._arrived.set()
        if self._runner is not None:
            await self._runner
            self._runner = None
        self._fail_waiting(Unavailable(f"model '{self.name}' was unloaded before the request ran"))

    def _fail_waiting(self, error: Exception) -> None:
        for queue in self._all_queues():
            for entry in queue:
                if entry.waiting:
                    entry.future.set_exception(error)
            queue.clear()

    async def submit(
        self,
        request: Request,
        *,
        priority: int = 0,
        timeout_us: int = 0,
        timing: RequestTiming | None = None,
    ) -> Response:
        placement = self.policy.place(priority, timeout_us)
        if self._closing:
            raise Unavailable(f"model '{self.name}' is being unloaded")
        level = placement.level
        limit = self.policy.levels[level].max_queue_size
        if limit and self._waiting[level] >= limit:
            raise Unavailable(
                f"model '{self.name}': the request queue is full (max_queue_size {limit} at "
                f"priority level {level + 1}); retry later"
            )
        timeout_ns = placement.timeout_us * 1000
        entry = _Entry(
            request,
            batch_size_of(request, self.policy.max_batch_size),
            level,
            time.perf_counter_ns() + timeout_ns if timeout_ns else 0,
            placement.delay_on_timeout,
            self.policy.ragged,
        )
        self._enqueue(entry)
        try:
            response = await self._answer(entry, placement)
        finally:
            # Caller gone, or timed out: cancelling the future takes the entry out of the
            # queue (the batcher skips it) before a batch can take it.
            entry.future.cancel()
        if timing is not None:
            timing.compute_start_ns = entry.taken_ns
        return response

    async def _answer(self, entry: _Entry, placement: QueuePlacement) -> Response:
        """The entry's Response; UNAVAILABLE when it is still queued at its REJECT timeout."""
        if placement.timeout_us and not placement.delay_on_timeout:
            await asyncio.wait((entry.future,), timeout=placement.timeout_us / 1e6)
            if entry.waiting:
                raise Unavailable(
                    f"model '{self.name}': the request timed out after "
                    f"{placement.timeout_us} us in the queue (timeout_action REJECT)"
                )
        return await entry.future

    def _enqueue(self, entry: _Entry) -> None:
        self._queues[entry.level].append(entry)
        self._waiting[entry.level] += 1
        entry.future.add_done_callback(lambda _: self._left(entry))
        if self.policy.preserve_ordering:
            self._order.append(entry)
        self._arrived.set()

    def _left(self, entry: _Entry) -> None:
        if not entry.taken_ns:
            self._waiting[entry.level] -= 1
        if self.policy.preserve_ordering:
            self._release_in_order()

    # -- forming batches -------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._form_batches()
        except Exception:
            # A bug here must not leave callers waiting forever: fail them, refuse new ones.
            log.exception("the dynamic batcher of model '%s' failed", self.name)
            self._closing = True
            self._fail_waiting(Internal(f"the dynamic batcher of model '{self.name}' failed"))

    async def _form_batches(self) -> None:
        async with asyncio.TaskGroup() as group:
            while not self._closing:
                await self._free.acquire()
                try:
                    batch = await self._next_batch()
                except BaseException:
                    self._free.release()
                    raise
                if not batch:
                    self._free.release()
                    continue
                group.create_task(self._execute(batch))

    async def _next_batch(self) -> list[_Entry]:
        """The next batch to run, once it should run; [] when closing."""
        while not self._closing:
            self._arrived.clear()
            now = time.perf_counter_ns()
            self._expire(now)
            batch, complete = self._candidates()
            if batch:
                oldest = min(entry.enqueued_ns for entry in batch)
                due = oldest + self.policy.max_queue_delay_us * 1000
                if complete or now >= due:
                    return self._take(batch, now)
                wait: float | None = (due - now) / 1e9
            else:
                wait = None
            # Wake for a new request, or when the oldest one has waited long enough.
            # asyncio.timeout, not wait_for: no extra Task per wake.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._arrived.wait()
        return []

    def _expire(self, now: int) -> None:
        """Requests past a DELAY timeout move behind the requests of their level still within
        their own (Triton: after the requests of the same or more urgent levels)."""
        if not self._delays:
            return
        for queue in self._queues:
            if not any(_overdue(entry, now) for entry in queue):
                continue
            kept = []
            for entry in queue:
                if _overdue(entry, now):
                    entry.deadline_ns = 0  # delayed once; it keeps its place from now on
                    self._delayed[entry.level].append(entry)
                elif entry.waiting:
                    kept.append(entry)
            queue.clear()
            queue.extend(kept)

    def _candidates(self) -> tuple[list[_Entry], bool]:
        """The batch the queue heads form now, and whether it should run without waiting.

        Triton's rules: it runs at once when it is full, when it reached a preferred size (it
        is cut there), when the next request cannot join it (another shape, or too big to
        fit), when it is at least the largest preferred size (a request that alone is larger
        runs at once), and when the next request would take it past the largest preferred
        size: then it runs without that request (at its largest preferred cut, if it had one).
        """
        policy = self.policy
        largest = policy.largest_preferred
        batch: list[_Entry] = []
        total = 0
        preferred_cut = 0
        now = time.monotonic()
        for entry in self._waiting_entries():
            if entry.expires is not None and now >= entry.expires:
                # Its caller's deadline passed while it queued: answered, never run.
                entry.future.set_exception(self._late())
                continue
            if batch and (
                entry.key != batch[0].key
                or total + entry.size > policy.max_batch_size
                or total + entry.size > largest
            ):
                return _cut(batch, preferred_cut), True
            batch.append(entry)
            total += entry.size
            if total in policy.preferred_batch_sizes:
                preferred_cut = len(batch)
            if total >= policy.max_batch_size or total >= largest:
                return batch, True  # past largest only when it is one request alone
        if preferred_cut:
            return batch[:preferred_cut], True
        return batch, policy.max_queue_delay_us == 0

    def _late(self) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"request for model '{self.name}' was not run before its deadline (it waited in "
            "the dynamic batcher's queue)"
        )

    def _all_queues(self) -> Iterator[collections.deque[_Entry]]:
        """Every queue in the order batches are taken from: by level, delayed after the rest."""
        for queue, delayed in zip(self._queues, self._delayed, strict=True):
            yield queue
            yield delayed

    def _waiting_entries(self) -> Iterator[_Entry]:
        for queue in self._all_queues():
            for entry in queue:
                if entry.waiting:
                    yield entry

    def _take(self, batch: list[_Entry], now: int) -> list[_Entry]:
        for entry in batch:
            entry.taken_ns = now
            self._waiting[entry.level] -= 1
        for queue in self._all_queues():
            while queue and not queue[0].waiting:
                queue.popleft()
        return batch

    # -- running them ----------------------------------------------------------------------

    async def _execute(self, batch: list[_Entry]) -> None:
        """Run one batch on a free instance and hand each request its own outcome."""
        try:
            start = time.perf_counter_ns()
            with measure_batch() as measured:
                outcomes, ok = await self._outcomes([entry.request for entry in batch])
            if ok:  # Triton counts successful executions only (execution_count, batch_stats)
                record_execution(self._stats, sum(entry.size for entry in batch), start, measured)
            for entry, outcome in zip(batch, outcomes, strict=True):
                entry.result = outcome
                if not self.policy.preserve_ordering:
                    _resolve(entry)
            if self.policy.preserve_ordering:
                self._release_in_order()
        finally:
            self._free.release()
            # Cancelled before its outcome (the batcher failed): its callers must not wait on.
            for entry in batch:
                if entry.result is None and not entry.future.done():
                    entry.future.set_exception(
                        Unavailable(f"model '{self.name}': the batch of this request was cancelled")
                    )

    async def _outcomes(
        self, requests: list[Request]
    ) -> tuple[list[Response | BaseException], bool]:
        """One Response per request, or the error that failed the whole execute for each;
        and whether the execute succeeded (per-request errors in Responses still count as
        an execution, as in Triton)."""
        try:
            responses = await self._backend.execute(requests)
        except Exception as exc:
            return [exc] * len(requests), False
        if len(responses) != len(requests):
            error = Internal(
                f"model '{self.name}' returned {len(responses)} responses for a batch of "
                f"{len(requests)} requests"
            )
            return [error] * len(requests), False
        return list(responses), True

    def _release_in_order(self) -> None:
        """Answer requests in arrival order: each waits until every earlier one is answered."""
        order = self._order
        while order and (order[0].result is not None or order[0].future.done()):
            _resolve(order.popleft())


def _overdue(entry: _Entry, now: int) -> bool:
    return entry.waiting and entry.delay_on_timeout and 0 < entry.deadline_ns <= now


def _cut(batch: list[_Entry], preferred_cut: int) -> list[_Entry]:
    return batch[:preferred_cut] if preferred_cut else batch


def _resolve(entry: _Entry) -> None:
    if entry.future.done():
        return  # the caller is gone: nobody to answer
    result = entry.result
    if isinstance(result, BaseException):
        entry.future.set_exception(result)
    elif result is not None:
        entry.future.set_result(result)
