"""Admission control: a bounded, first-come-first-served limit on calls in flight for one RPC.

This is nvrpc's "N armed contexts per queue" as a counter: at most ``limit`` calls of an RPC run
at once; the others wait in arrival order, each no longer than its own deadline or the RPC's
queue timeout, and then fail with RESOURCE_EXHAUSTED. Every RPC keeps its counters here too, so
``statistics()`` answers "how busy is this RPC" in one place.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import math

from .errors import ResourceExhausted

__all__ = ["Admission", "AdmissionStatistics"]


@dataclasses.dataclass(frozen=True, slots=True)
class AdmissionStatistics:
    """A snapshot of one RPC's admission counters."""

    name: str
    limit: int | None
    in_flight: int
    waiting: int
    completed: int
    failed: int
    cancelled: int
    rejected: int

    @property
    def idle(self) -> bool:
        return self.in_flight == 0 and self.waiting == 0


class Admission:
    """A FIFO limit on concurrent calls of one RPC, with the RPC's outcome counters.

    ``limit=None`` admits every call at once (counters only). The fast path, a free slot and
    nobody waiting, takes the slot without suspending.
    """

    __slots__ = (
        "_waiters",
        "cancelled",
        "completed",
        "failed",
        "in_flight",
        "limit",
        "name",
        "queue_timeout",
        "rejected",
    )

    def __init__(self, name: str, limit: int | None, *, queue_timeout: float | None = None) -> None:
        self.name = name
        self.limit = limit
        self.queue_timeout = queue_timeout
        self.in_flight = 0
        self.completed = 0
        self.failed = 0
        self.cancelled = 0
        self.rejected = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is ahead in the queue."""
        if self.limit is None or (self.in_flight < self.limit and not self._waiters):
            self.in_flight += 1
            return True
        return False

    async def acquire(self, time_remaining: float | None = None) -> None:
        """Take a slot, waiting at most ``min(time_remaining, queue_timeout)`` seconds."""
        if self.try_acquire():
            return
        timeout = _min_timeout(time_remaining, self.queue_timeout)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(_loop_timeout(timeout)):
                await waiter
        except TimeoutError:
            self._abandon(waiter)
            self.rejected += 1
            raise ResourceExhausted(
                f"{self.name}: {self.limit} calls in flight and {len(self._waiters)} waiting; "
                f"no slot freed within {timeout:.3g}s. Retry later, or raise the RPC's "
                "max_in_flight / queue_timeout"
            ) from None
        except BaseException:
            # Cancelled while queued (client gone, server stopping): leave no trace.
            self._abandon(waiter)
            raise

    def _abandon(self, waiter: asyncio.Future[None]) -> None:
        # release() may have handed this waiter a slot in the same loop iteration that its
        # timeout or cancellation fired; that slot is ours now and must be passed on.
        if waiter.done() and not waiter.cancelled():
            self.release()
        else:
            waiter.cancel()
            with contextlib.suppress(ValueError):  # release() may have popped it already
                self._waiters.remove(waiter)

    def release(self) -> None:
        """Give a slot back: to the first live waiter if there is one, else to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot moves to the waiter; in_flight unchanged
                return
        self.in_flight -= 1

    def statistics(self) -> AdmissionStatistics:
        return AdmissionStatistics(
            name=self.name,
            limit=self.limit,
            in_flight=self.in_flight,
            waiting=sum(1 for w in self._waiters if not w.done()),
            completed=self.completed,
            failed=self.failed,
            cancelled=self.cancelled,
            rejected=self.rejected,
        )


def _min_timeout(a: float | None, b: float | None) -> float:
    values = [v for v in (a, b) if v is not None]
    return max(0.0, min(values)) if values else math.inf


def _loop_timeout(timeout: float) -> float | None:
    return None if math.isinf(timeout) else timeout
