"""Admission control: a bounded, first-come-first-served limit on calls in flight for one RPC.

This is nvrpc's "N armed contexts per queue" as a counter: at most ``limit`` calls of an RPC run
at once; the others wait in arrival order, each no longer than its own deadline or the RPC's
queue timeout, and then fail with RESOURCE_EXHAUSTED. Every RPC keeps its counters here too, so
``statistics()`` answers "how busy is this RPC" in one place, and ``times`` keeps the RPC's
call-duration and load-ratio histograms (bucket counts that metrics read at scrape time).

:class:`ConnectionBudget` bounds what calls hold across RPCs, in total and per client
connection: the server keeps one for open streams and one for the bytes of unary replies handed
to gRPC and not yet sent (a client that does not read its responses); :class:`ServerLimits`
holds both.
"""

from __future__ import annotations

import bisect
import dataclasses
import math

from .errors import ResourceExhausted
from .pools import Handover

__all__ = [
    "Admission",
    "AdmissionStatistics",
    "CallTimes",
    "ConnectionBudget",
    "Histogram",
    "ServerLimits",
]

#: Call durations in seconds: 100 us (a bare unary call on loopback) up to 10 s.
DURATION_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip
#: Time inside execute / total call time (admission wait included): 1.0 means never queued.
RATIO_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


class Histogram:
    """Bucket counts and a sum, kept cheaply on the hot path; read by a metrics collector.

    ``counts[i]`` holds the observations in (bounds[i-1], bounds[i]] (not cumulative); the
    last entry counts those above every bound (+Inf).
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= bound) pairs ending with (inf, total)."""
        pairs, total = [], 0
        for bound, count in zip((*self.bounds, math.inf), list(self.counts), strict=True):
            total += count
            pairs.append((bound, total))
        return pairs


class CallTimes:
    """Per-RPC histograms of call duration and of compute/total (the load ratio)."""

    __slots__ = ("duration", "load_ratio")

    def __init__(self) -> None:
        self.duration = Histogram(DURATION_BUCKETS)
        self.load_ratio = Histogram(RATIO_BUCKETS)

    def observe(self, total: float, compute: float) -> None:
        """A finished call: ``total`` seconds since it arrived, ``compute`` of them admitted."""
        self.duration.observe(total)
        self.load_ratio.observe(compute / total if total > 0 else 1.0)


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
        "_handover",
        "arrived",
        "cancelled",
        "completed",
        "failed",
        "in_flight",
        "limit",
        "name",
        "queue_timeout",
        "rejected",
        "times",
    )

    def __init__(self, name: str, limit: int | None, *, queue_timeout: float | None = None) -> None:
        self.name = name
        self.limit = limit
        self.queue_timeout = queue_timeout
        self.in_flight = 0
        self.arrived = 0  # calls whose handler started (the grpc core and aio may shed others)
        self.completed = 0
        self.failed = 0
        self.cancelled = 0
        self.rejected = 0
        self.times = CallTimes()
        self._handover: Handover[None] = Handover(self._slot_free)

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is ahead in the queue."""
        if self.limit is None or (self.in_flight < self.limit and not self._handover.waiters):
            self.in_flight += 1
            return True
        return False

    async def acquire(self, time_remaining: float | None = None) -> None:
        """Take a slot, waiting at most ``min(time_remaining, queue_timeout)`` seconds."""
        if self.try_acquire():
            return
        timeout = _min_timeout(time_remaining, self.queue_timeout)
        # Cancelled while queued (client gone, server stopping), the wait leaves no trace; a
        # slot handed over in the same loop step as the timeout or cancellation is passed on.
        try:
            await self._handover.wait(_loop_timeout(timeout))
        except TimeoutError:
            self.rejected += 1
            raise ResourceExhausted(
                f"{self.name}: {self.limit} calls in flight and {len(self._handover.waiters)} "
                f"waiting; no slot freed within {timeout:.3g}s. Retry later, or raise the RPC's "
                "max_in_flight / queue_timeout"
            ) from None

    def release(self) -> None:
        """Give a slot back: to the first live waiter if there is one, else to the pool."""
        # Handed over, the slot moves to the waiter: in_flight is unchanged.
        if not self._handover.hand(None):
            self.in_flight -= 1

    def _slot_free(self, _: None) -> None:
        self.in_flight -= 1

    def statistics(self) -> AdmissionStatistics:
        return AdmissionStatistics(
            name=self.name,
            limit=self.limit,
            in_flight=self.in_flight,
            waiting=self._handover.waiting(),  # the metrics thread calls this too
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


class ConnectionBudget:
    """An amount held by calls, bounded in total (``limit``) and per client connection
    (``per_connection``); ``take`` beyond either raises ResourceExhausted naming the bound."""

    __slots__ = ("_held", "limit", "name", "per_connection", "refused", "total", "unit")

    def __init__(self, name: str, unit: str, *, limit: int, per_connection: int) -> None:
        self.name = name  # the config field stem: max_<name>, max_<name>_per_connection
        self.unit = unit
        self.limit = limit
        self.per_connection = per_connection
        self.total = 0
        self.refused = 0
        self._held: dict[str, int] = {}

    def take(self, connection: str, amount: int, what: str) -> None:
        """Hold ``amount`` for ``connection``, or raise (holding nothing) past a bound."""
        held = self._held.get(connection, 0)
        bound = ""
        if held + amount > self.per_connection:
            bound = f"{held} {self.unit} on this connection, max_{self.name}_per_connection"
            limit = self.per_connection
        elif self.total + amount > self.limit:
            bound = f"{self.total} {self.unit} in total, max_{self.name}"
            limit = self.limit
        if bound:
            self.refused += 1
            raise ResourceExhausted(
                f"{what}: {amount} more {self.unit} would pass the server's bound ({bound}="
                f"{limit}); retry later"
            )
        self._held[connection] = held + amount
        self.total += amount

    def give(self, connection: str, amount: int) -> None:
        left = self._held.get(connection, 0) - amount
        if left > 0:
            self._held[connection] = left
        else:
            self._held.pop(connection, None)
        self.total -= amount

    def statistics(self) -> dict[str, int]:
        return {
            "held": self.total,
            "connections": len(self._held),
            "refused": self.refused,
            "limit": self.limit,
        }


class ServerLimits:
    """What a server bounds across RPCs: open streams, and unsent unary reply bytes."""

    __slots__ = ("streams", "unsent_replies")

    def __init__(
        self,
        *,
        max_streams: int,
        max_streams_per_connection: int,
        max_unsent_reply_bytes: int,
        max_unsent_reply_bytes_per_connection: int,
    ) -> None:
        self.streams = ConnectionBudget(
            "streams", "streams", limit=max_streams, per_connection=max_streams_per_connection
        )
        self.unsent_replies = ConnectionBudget(
            "unsent_reply_bytes",
            "bytes of unsent replies",
            limit=max_unsent_reply_bytes,
            per_connection=max_unsent_reply_bytes_per_connection,
        )

    @classmethod
    def unbounded(cls) -> ServerLimits:
        big = 2**62
        return cls(
            max_streams=big,
            max_streams_per_connection=big,
            max_unsent_reply_bytes=big,
            max_unsent_reply_bytes_per_connection=big,
        )
