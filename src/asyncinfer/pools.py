"""Object pools: a bounded set of exclusive things handed out as leases, first come first served.

::

    pool = Pool(sessions, name="onnx-sessions", reset=clear_state)
    async with pool.acquire(timeout=1.0) as lease:
        lease.item.run(...)
    # returned (and reset) here on every path, cancellation included

A lease must be returned: ``async with`` does it, or call ``lease.release()``. Using a lease
after its release raises ``UsageError``. A lease garbage-collected without release is a leak:
it is logged, counted (``pool.leaks()``) and its item comes back to the pool.

Waiters are served strictly in arrival order: a returned item goes straight to the oldest
waiter, so a newcomer never takes it first. An acquisition that waits longer than its timeout
fails with ``ResourceExhausted`` naming the pool; acquiring from a closed pool fails with
``Unavailable``. ``await pool.drain()`` is the graceful close: new acquisitions fail at once,
the waiting ones are still served, and it returns when every item is back.

:class:`Handover` is that first-come-first-served hand-over on its own, for any owner of
freed things (admission slots, python-model instances as well as pool items).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import traceback
from collections.abc import Callable, Generator, Iterable
from types import TracebackType
from typing import Any, Generic, TypeVar

from .errors import ConfigError, ResourceExhausted, Unavailable, UsageError

__all__ = ["Handover", "Lease", "Pool", "PoolStatistics"]

T = TypeVar("T")
log = logging.getLogger("asyncinfer.pools")

_DEFAULT: Any = object()


@dataclasses.dataclass(frozen=True, slots=True)
class PoolStatistics:
    name: str
    size: int
    idle: int
    leased: int
    waiting: int
    acquired: int
    timeouts: int
    leaks: int
    retired: int
    closed: bool


class Handover(Generic[T]):
    """The waiters for something freed elsewhere (a slot, an item, an instance), first come
    first served: ``hand(value)`` gives a freed value to the oldest live waiter, and when
    nobody waits the owner keeps it.

    A waiter can be cancelled or time out in the same loop step that a value was handed to
    it. The value is its own by then: it passes it on to the next waiter, or to
    ``keep(value)`` when there is none, so nothing handed over is ever lost.

    ``waiters`` is the line itself, oldest first, for the owner's fast path: while it is
    empty a free value may be taken at once, without a Future, and nobody is passed over. It
    can briefly hold waiters that are done but have not left yet; ``waiting()`` counts only
    the live ones.
    """

    __slots__ = ("_keep", "waiters")

    def __init__(self, keep: Callable[[T], object]) -> None:
        self._keep = keep
        self.waiters: collections.deque[asyncio.Future[T]] = collections.deque()

    async def wait(self, within: float | None = None) -> T:
        """Queue for the next value handed over, at most ``within`` seconds (None: no bound),
        then ``TimeoutError``; a waiter that leaves without a value leaves no trace."""
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            if within is None:
                return await waiter
            async with asyncio.timeout(within):
                return await waiter
        except BaseException:
            self._abandon(waiter)
            raise

    def _abandon(self, waiter: asyncio.Future[T]) -> None:
        # The waiting task ended (cancelled, timed out) but hand() may have given it a value
        # in the same loop step, before the task could run: pass the value on, never lose it.
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            value = waiter.result()
            if not self.hand(value):
                self._keep(value)
            return
        waiter.cancel()
        with contextlib.suppress(ValueError):  # hand() or fail() took it off the line already
            self.waiters.remove(waiter)

    def hand(self, value: T) -> bool:
        """Give ``value`` to the oldest live waiter; False when nobody waits (keep it)."""
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(value)
                return True
        return False

    def fail(self, error: Callable[[], BaseException]) -> None:
        """Fail every live waiter, each with an exception of its own from ``error()``."""
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error())

    def waiting(self) -> int:
        """The live waiters. Safe from another thread (a metrics scrape): it counts a copy of
        the line, which the loop may be changing meanwhile."""
        return sum(1 for waiter in list(self.waiters) if not waiter.done())


class Lease(Generic[T]):
    """Exclusive use of one pooled item until ``release()`` (or the end of ``async with``)."""

    __slots__ = ("__weakref__", "_item", "_pool", "_released")

    def __init__(self, pool: Pool[T], item: T) -> None:
        self._pool = pool
        self._item = item
        self._released = False

    @property
    def item(self) -> T:
        if self._released:
            raise UsageError(f"a lease of pool {self._pool.name!r} was used after its release")
        return self._item

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        """Return the item: the pool resets it and hands it to the oldest waiter.

        Synchronous on purpose: returning never waits, so it cannot be interrupted by a
        cancellation halfway and it can run from ``__aexit__`` and from ``__del__``.
        """
        if self._released:
            raise UsageError(f"a lease of pool {self._pool.name!r} was released twice")
        self._released = True
        item, self._item = self._item, None  # type: ignore[assignment]
        self._pool._give_back(item)

    def __enter__(self) -> Lease[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._released:
            self.release()

    def __del__(self) -> None:
        if not getattr(self, "_released", True):
            self._released = True
            self._pool._leaked(self._item)

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        return f"<Lease of {self._pool.name!r} ({state})>"


class _Acquire(Generic[T]):
    """What ``pool.acquire()`` returns: ``async with`` it, or ``await`` it for a bare lease."""

    __slots__ = ("_lease", "_pool", "_timeout")

    def __init__(self, pool: Pool[T], timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._lease: Lease[T] | None = None

    def __await__(self) -> Generator[Any, None, Lease[T]]:
        return self._pool._lease(self._timeout).__await__()

    async def __aenter__(self) -> Lease[T]:
        self._lease = await self._pool._lease(self._timeout)
        return self._lease

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        lease, self._lease = self._lease, None
        if lease is None or lease.released:
            return
        if tb is None:
            lease.release()
            return
        # An exception is leaving the block. Its traceback holds the frames it passed through,
        # and their locals may hold views of the leased item (buffers of a memory stack), which
        # would make the reset on return fail. Clear those finished frames' locals first; the
        # traceback text stays intact. A reset that still fails must not hide the exception.
        traceback.clear_frames(tb)
        try:
            lease.release()
        except Exception as reset_error:
            log.warning("pool %r: reset on return failed: %s", self._pool.name, reset_error)


class Pool(Generic[T]):
    """A fixed set of items lent out one lease at a time.

    ``reset(item)`` runs on every return, before the next borrower sees the item. If it raises,
    the item is retired (never lent again, ``retired`` counts it) and the error propagates to
    whoever released; ``factory()``, when given, builds a replacement so the pool keeps its size.
    ``timeout`` is the default acquisition timeout in seconds (None: wait as long as needed).
    """

    def __init__(
        self,
        items: Iterable[T],
        *,
        name: str,
        reset: Callable[[T], object] | None = None,
        factory: Callable[[], T] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.name = name
        self._idle: collections.deque[T] = collections.deque(items)
        if not self._idle:
            raise ConfigError(f"pool {name!r} needs at least one item")
        if timeout is not None and timeout < 0:
            raise ConfigError(f"pool {name!r}: timeout must be seconds >= 0 or None")
        self._reset = reset
        self._factory = factory
        self._timeout = timeout
        self._size = len(self._idle)
        self._handover: Handover[T] = Handover(self._keep)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = self._draining = False
        self._quiet: asyncio.Future[None] | None = None  # drain() waits on it
        self._acquired = self._timeouts = self._leaks = self._retired = 0

    def acquire(self, timeout: float | None = _DEFAULT) -> _Acquire[T]:
        """A lease on the next free item, waiting up to ``timeout`` seconds in FIFO order."""
        return _Acquire(self, self._timeout if timeout is _DEFAULT else timeout)

    def acquire_nowait(self) -> Lease[T]:
        """A lease on a free item now, or ``ResourceExhausted`` when none is free."""
        self._check_open()
        # Recorded here too: a leaked lease is given back through this loop (see _leaked).
        with contextlib.suppress(RuntimeError):  # no running loop: a synchronous caller
            self._loop = asyncio.get_running_loop()
        if not self._idle or self._handover.waiters:
            raise ResourceExhausted(f"pool {self.name!r}: all {self._size} items are leased")
        return self._grant(self._idle.popleft())

    async def _lease(self, wait: float | None) -> Lease[T]:
        self._check_open()
        self._loop = asyncio.get_running_loop()
        if self._idle and not self._handover.waiters:
            return self._grant(self._idle.popleft())
        try:
            item = await self._handover.wait(wait)
        except BaseException as exc:
            self._wake_drain()  # one waiter fewer: drain() may be waiting for that
            if isinstance(exc, TimeoutError):
                self._timeouts += 1
                raise ResourceExhausted(
                    f"pool {self.name!r}: no item free within {wait} s "
                    f"({self._size} items, all leased; {len(self._handover.waiters)} waiting)"
                ) from None
            raise
        return self._grant(item)

    def _grant(self, item: T) -> Lease[T]:
        self._acquired += 1
        return Lease(self, item)

    def _give_back(self, item: T) -> None:
        if self._reset is not None:
            try:
                self._reset(item)
            except BaseException:
                self._retire()
                raise
        self._hand_over(item)

    def _hand_over(self, item: T) -> None:
        if not self._handover.hand(item):
            self._keep(item)

    def _keep(self, item: T) -> None:
        self._idle.append(item)
        self._wake_drain()

    def _retire(self) -> None:
        self._retired += 1
        self._size -= 1
        if self._factory is not None and not (self._closed or self._draining):
            self._size += 1
            self._hand_over(self._factory())
        else:
            log.warning(
                "pool %r retired an item whose reset failed; %d left", self.name, self._size
            )
            self._wake_drain()

    def _leaked(self, item: T) -> None:
        self._leaks += 1
        log.warning(
            "pool %r: a lease was garbage-collected without release (leak #%d); "
            "use `async with pool.acquire()` or call lease.release()",
            self.name,
            self._leaks,
        )
        # __del__ can run in any thread and at any time: return the item through the loop.
        loop = self._loop
        if loop is None or loop.is_closed():
            self._give_back(item)
            return
        try:
            loop.call_soon_threadsafe(self._give_back, item)
        except RuntimeError:  # the loop closed in between
            self._give_back(item)

    def _check_open(self) -> None:
        if self._closed or self._draining:
            raise Unavailable(f"pool {self.name!r} is closed")

    def _is_quiet(self) -> bool:
        return len(self._idle) >= self._size and not self._handover.waiting()

    def _wake_drain(self) -> None:
        if self._quiet is not None and not self._quiet.done() and self._is_quiet():
            self._quiet.set_result(None)

    async def drain(self) -> None:
        """Close gracefully: refuse new acquisitions, serve the waiting ones, wait for every
        lease to come back, then close. Idempotent."""
        self._draining = True
        loop = asyncio.get_running_loop()
        while not self._is_quiet():
            # Returns happen on this loop (a leak is routed through it as well), and each one
            # checks whether the pool went quiet.
            self._quiet = loop.create_future()
            try:
                await self._quiet
            finally:
                self._quiet = None
        self.close()

    def close(self) -> None:
        """Refuse new acquisitions and fail the waiting ones; leases out may still return."""
        self._closed = True
        self._handover.fail(lambda: Unavailable(f"pool {self.name!r} closed while waiting"))

    @property
    def closed(self) -> bool:
        return self._closed

    def leaks(self) -> int:
        """Leases garbage-collected without being released."""
        return self._leaks

    def idle_items(self) -> list[T]:
        """The items not lent out right now (for the owner to destroy after ``close()``)."""
        return list(self._idle)

    def statistics(self) -> PoolStatistics:
        idle = len(self._idle)
        return PoolStatistics(
            name=self.name,
            size=self._size,
            idle=idle,
            leased=self._size - idle,
            waiting=self._handover.waiting(),
            acquired=self._acquired,
            timeouts=self._timeouts,
            leaks=self._leaks,
            retired=self._retired,
            closed=self._closed,
        )

    def __repr__(self) -> str:
        s = self.statistics()
        return f"<Pool {self.name!r} size={s.size} idle={s.idle} waiting={s.waiting}>"
