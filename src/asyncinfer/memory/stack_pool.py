"""StackPool: a pool of per-request memory, each lease a host stack, a device stack and a stream.

This is trtlab's pairing: one request holds a host stack (pinned where CUDA exists), a device
stack and the CUDA stream its copies and kernels run on, so everything the request enqueues is
ordered on one stream and its buffers cannot be reused before the stream is done::

    stacks = StackPool(count=8, host_bytes=4 << 20, device_bytes=4 << 20)
    stacks.open()                                      # allocates; Resources.start() calls it
    async with stacks.acquire(timeout=1.0) as lease:
        memory = lease.item                            # a StackSet
        x = memory.host.array((batch, 16), np.float32)
    await stacks.aclose()                              # waits for the leases out; or close()

Where CUDA is missing, ``device_bytes=0`` gives host-only stack sets (``device`` and ``stream``
are None); asking for device memory or pinned host memory raises a ConfigError saying why.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import ConfigError, UsageError
from ..pools import Pool, _Acquire
from .allocators import DeviceAllocator, MemoryKind, allocator_for
from .stack import DEFAULT_ALIGNMENT, MemoryStack
from .stream import Stream

__all__ = ["StackPool", "StackSet"]


@dataclasses.dataclass(eq=False)
class StackSet:
    """What one lease of a StackPool holds."""

    host: MemoryStack
    device: MemoryStack | None = None
    stream: Stream | None = None

    def reset(self) -> None:
        # Wait for the stream first: a D2H copy or kernel still in flight may read or write
        # these buffers, and the next borrower would otherwise overwrite them under it.
        if self.stream is not None:
            self.stream.synchronize()
        self.host.reset()
        if self.device is not None:
            self.device.reset()

    def close(self) -> None:
        self.host.close()
        if self.device is not None:
            self.device.close()
        if self.stream is not None:
            self.stream.close()


class StackPool:
    """``count`` StackSets behind a FIFO pool; the stacks reset when a lease returns.

    ``host_kind`` is "host" (pageable, page-aligned) or "pinned" (cudaHostAlloc); "auto"
    picks pinned when a device stack is requested, host otherwise.
    """

    def __init__(
        self,
        *,
        count: int,
        host_bytes: int,
        device_bytes: int = 0,
        host_kind: MemoryKind | str = "auto",
        name: str = "stacks",
        alignment: int = DEFAULT_ALIGNMENT,
        timeout: float | None = None,
    ) -> None:
        if count < 1 or host_bytes < 1 or device_bytes < 0:
            raise ConfigError(
                f"stack pool {name!r}: count and host_bytes must be positive and device_bytes "
                f">= 0; got count={count}, host_bytes={host_bytes}, device_bytes={device_bytes}"
            )
        if host_kind == "auto":
            host_kind = "pinned" if device_bytes else "host"
        if host_kind not in ("host", "pinned"):
            raise ConfigError(f"stack pool {name!r}: host_kind must be host, pinned or auto")
        self.name = name
        self.count = count
        self.host_bytes = host_bytes
        self.device_bytes = device_bytes
        self.host_kind: MemoryKind = host_kind  # type: ignore[assignment]
        self.alignment = alignment
        self.timeout = timeout
        self._pool: Pool[StackSet] | None = None
        self._sets: list[StackSet] = []
        self._closing = False

    def open(self) -> None:
        """Allocate every stack set (ConfigError when pinned or device memory is unavailable)."""
        if self._pool is not None and not self._pool.closed:
            raise UsageError(f"stack pool {self.name!r} is already open")
        if self._sets:
            raise UsageError(
                f"stack pool {self.name!r}: {len(self._sets)} set(s) leased before close() "
                "are still out; reopen once they are back"
            )
        self._closing = False
        sets: list[StackSet] = []
        try:
            for i in range(self.count):
                sets.append(self._make(i))
        except BaseException:
            # A later set failed (out of pinned or device memory): free the ones made so far.
            for stack_set in sets:
                stack_set.close()
            raise
        self._sets = sets
        self._pool = Pool(
            list(self._sets),
            name=self.name,
            reset=self._reset,
            factory=self._replace,
            timeout=self.timeout,
        )

    def _reset(self, stack_set: StackSet) -> None:
        try:
            stack_set.reset()
        except BaseException:
            # The pool retires a set whose reset failed (a view outlived its lease): its memory
            # stays with those views, never lent again; _replace() allocates a fresh set.
            self._sets.remove(stack_set)
            raise
        if self._closing:
            # Returned after close(): nobody borrows it again, so its memory goes now.
            self._free(stack_set)

    def _replace(self) -> StackSet:
        stack_set = self._make(len(self._sets))
        self._sets.append(stack_set)
        return stack_set

    def _make(self, index: int) -> StackSet:
        host = MemoryStack(
            allocator_for(self.host_kind).allocate(self.host_bytes),
            name=f"{self.name}[{index}].{self.host_kind}",
            alignment=self.alignment,
        )
        if not self.device_bytes:
            return StackSet(host)
        stack_set = StackSet(host)
        try:
            stack_set.stream = Stream()
            stack_set.device = MemoryStack(
                DeviceAllocator().allocate(self.device_bytes),
                name=f"{self.name}[{index}].device",
                alignment=self.alignment,
            )
        except BaseException:
            stack_set.close()
            raise
        return stack_set

    def _free(self, stack_set: StackSet) -> None:
        if stack_set in self._sets:
            self._sets.remove(stack_set)
            stack_set.close()

    def acquire(self, timeout: float | None = None) -> _Acquire[StackSet]:
        """``async with stacks.acquire() as lease``: ``lease.item`` is a StackSet."""
        if self._pool is None:
            raise UsageError(f"stack pool {self.name!r} is not open; call open() first")
        return self._pool.acquire(self.timeout if timeout is None else timeout)

    def close(self) -> None:
        """Refuse new leases; free every stack set that is back now, the others on return."""
        if self._pool is None:
            return
        self._pool.close()
        self._closing = True
        for stack_set in self._pool.idle_items():
            self._free(stack_set)

    async def aclose(self) -> None:
        """The graceful close: refuse new leases, wait for every lease out, free everything."""
        if self._pool is None:
            return
        await self._pool.drain()
        self.close()

    def statistics(self) -> dict[str, Any]:
        if self._pool is None:
            return {"name": self.name, "open": False}
        return {
            **dataclasses.asdict(self._pool.statistics()),
            "open": True,
            "host_kind": self.host_kind,
            "host_bytes": self.host_bytes,
            "device_bytes": self.device_bytes,
        }
