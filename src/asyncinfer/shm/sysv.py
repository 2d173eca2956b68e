"""The client side of the System V path: a ring of SysV segments handing out tensor slots.

A co-located client (a preprocessing service, a load client) writes tensors into shared memory
and sends only a descriptor (segment id, key, offset, size) in its request. :class:`SysvRing`
is a cyclic allocator in the nvrpc/trtlab sense: a ring of segments, each used as a bump stack.
Slots are taken from the current segment; when one does not fit, the ring moves on to the next
segment whose slots have all been released and resets it. A released slot gives its space back
when the last slot of its segment is released, so the ring needs no free lists and never
fragments. Everything is bounded: the ring's size is fixed when it opens; when every segment is
busy ``allocate`` waits (within a timeout) and ``allocate_nowait`` raises ResourceExhausted.

The segments are created with a random key, mode 0600 and IPC_CREAT|IPC_EXCL, and removed when
the ring closes. Keys and ids are no secret (any local user reads them in /proc/sysvipc/shm), so
each ring draws a random 16-byte token when it opens and writes it in the header of every
segment (the first :data:`HEADER_BYTES` bytes, never handed out as a slot). The token travels in
each descriptor with the id and key; the server attaches by key, checks that it names the same
id, that the segment's creator is the server's own user and that it is not open to other users,
and compares the token with the segment's header (see :mod:`.attach` for what that guarantees).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import secrets
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import sysv_ipc

from ..errors import ResourceExhausted, UsageError
from ._lease import ReleasedOnExit
from ._spans import views_alive

__all__ = ["ALIGNMENT", "HEADER_BYTES", "TOKEN_BYTES", "ShmDescriptor", "Slot", "SysvRing"]

#: Slots start on 64-byte boundaries (a cache line; enough for any numpy dtype and AVX-512).
ALIGNMENT = 64
#: The ring's token, at the start of every segment.
TOKEN_BYTES = 16
#: Bytes at the start of a segment that hold its header (the token); slots come after them.
HEADER_BYTES = ALIGNMENT


@dataclasses.dataclass(frozen=True, slots=True)
class ShmDescriptor:
    """Where a tensor lies in SysV shared memory; what a request carries instead of bytes."""

    segment_id: int
    key: int
    offset: int
    size: int
    #: The ring's token (written in the segment's header); empty: the server refuses it.
    token: bytes = b""


class _Segment:
    """One SysV segment of the ring: attached here, used as a bump stack of slots."""

    def __init__(self, size: int, token: bytes) -> None:
        self.shm = _create_segment(HEADER_BYTES + size)
        self.capacity = HEADER_BYTES + size
        self.top = HEADER_BYTES  # the next free byte
        self.live = 0  # slots handed out and not yet released
        self.root: npt.NDArray[np.uint8] = np.frombuffer(self.shm, np.uint8)
        self.root[:TOKEN_BYTES] = np.frombuffer(token, np.uint8)
        self.token = token

    def fits(self, size: int) -> bool:
        return self.top + size <= self.capacity

    def take(self, size: int) -> int:
        offset = self.top
        self.top = _align_up(offset + size)
        self.live += 1
        return offset

    def close(self) -> None:
        # Mark for removal first: the segment disappears once the server detaches too.
        self.shm.remove()
        if views_alive(self.root):
            # A view escaped its slot. Leaving this process's mapping in place leaks one segment
            # until exit; unmapping it would turn the escaped view into a dangling pointer.
            return
        del self.root
        self.shm.detach()


def _create_segment(size: int) -> sysv_ipc.SharedMemory:
    # Random keys instead of IPC_PRIVATE: the key is the proof of ownership the server checks.
    for _ in range(64):
        key = random.randint(1, sysv_ipc.KEY_MAX)
        try:
            return sysv_ipc.SharedMemory(key, sysv_ipc.IPC_CREX, mode=0o600, size=size)
        except sysv_ipc.ExistentialError:
            continue  # that key is taken; draw another
    raise ResourceExhausted("could not find a free SysV key in 64 tries")


def _align_up(value: int) -> int:
    return -(-value // ALIGNMENT) * ALIGNMENT


class Slot(ReleasedOnExit):
    """Space for one tensor in a ring segment; release it (or use ``with``) when done.

    The views it gives out are valid until release; after that the space is reused.
    """

    __slots__ = ("_ring", "_segment", "descriptor")

    def __init__(self, ring: SysvRing, segment: _Segment, offset: int, size: int) -> None:
        self._ring: SysvRing | None = ring
        self._segment = segment
        self.descriptor = ShmDescriptor(
            segment.shm.id, segment.shm.key, offset, size, segment.token
        )

    @property
    def released(self) -> bool:
        return self._ring is None

    def view(self) -> memoryview:
        """The slot's bytes, writable."""
        return self._bytes().data

    def part(self, offset: int, size: int) -> ShmDescriptor:
        """The descriptor of ``[offset, offset + size)`` of this slot (one slot, two tensors)."""
        if offset < 0 or size < 0 or offset + size > self.descriptor.size:
            raise UsageError(
                f"[{offset}, {offset + size}) is not inside a {self.descriptor.size}-byte slot"
            )
        return dataclasses.replace(
            self.descriptor, offset=self.descriptor.offset + offset, size=size
        )

    def array(
        self, dtype: npt.DTypeLike, shape: Sequence[int], offset: int = 0
    ) -> npt.NDArray[Any]:
        """A numpy view of the slot's bytes from ``offset`` as ``dtype`` and ``shape`` (no copy)."""
        dt = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        self.part(offset, nbytes)  # bounds
        return self._bytes()[offset : offset + nbytes].view(dt).reshape(shape)

    def write(self, array: npt.ArrayLike) -> ShmDescriptor:
        """Copy ``array`` into the slot (one copy) and return the descriptor of those bytes."""
        data = np.ascontiguousarray(array)
        if data.nbytes > self.descriptor.size:
            raise UsageError(f"{data.nbytes} bytes do not fit a {self.descriptor.size}-byte slot")
        self._bytes()[: data.nbytes] = data.reshape(-1).view(np.uint8)
        return dataclasses.replace(self.descriptor, size=data.nbytes)

    def release(self) -> None:
        """Give the space back to the ring; a second call does nothing."""
        ring, self._ring = self._ring, None
        if ring is not None:
            ring._release(self._segment)

    def _bytes(self) -> npt.NDArray[np.uint8]:
        if self._ring is None:
            raise UsageError("the slot was released; its space may already hold another tensor")
        if not self._ring._segments:
            raise UsageError("the ring was closed; its segments are removed")
        start = self.descriptor.offset
        return self._segment.root[start : start + self.descriptor.size]


class SysvRing:
    """A bounded ring of SysV segments handing out :class:`Slot` s cyclically.

    ``segment_bytes`` bounds one slot; ``segments`` is how many slots' worth of segments may be
    in flight before allocation waits. Open it (``with`` or ``open()``) before allocating.
    """

    def __init__(self, segment_bytes: int, segments: int = 2) -> None:
        if segment_bytes < 1 or segments < 1:
            raise UsageError(
                f"need segment_bytes >= 1 and segments >= 1, not {segment_bytes}, {segments}"
            )
        self.segment_bytes = _align_up(segment_bytes)
        self.segment_count = segments
        self._segments: list[_Segment] = []
        self._current = 0
        self._released: asyncio.Event | None = None  # created lazily inside a running loop
        self._allocated = self._waits = 0

    def open(self) -> Self:
        if self._segments:
            raise UsageError("the ring is already open")
        token = secrets.token_bytes(TOKEN_BYTES)
        try:
            for _ in range(self.segment_count):
                self._segments.append(_Segment(self.segment_bytes, token))
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Remove every segment; slots still held become unusable."""
        segments, self._segments = self._segments, []
        for segment in segments:
            segment.close()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def segment_ids(self) -> list[int]:
        return [segment.shm.id for segment in self._segments]

    @property
    def segment_keys(self) -> list[int]:
        return [segment.shm.key for segment in self._segments]

    def allocate_nowait(self, size: int) -> Slot:
        """A slot of ``size`` bytes now, or ResourceExhausted when every segment is busy."""
        if not self._segments:
            raise UsageError("open() the ring before allocating")
        if not 0 < size <= self.segment_bytes:
            raise UsageError(f"slot size must be 1..{self.segment_bytes} bytes, not {size}")
        segment = self._segment_for(size)
        if segment is None:
            raise ResourceExhausted(
                f"all {len(self._segments)} SysV segments of {self.segment_bytes} bytes are in use"
            )
        self._allocated += 1
        return Slot(self, segment, segment.take(size), size)

    async def allocate(self, size: int) -> Slot:
        """A slot of ``size`` bytes, waiting for space to be released (bound it with a timeout)."""
        while True:
            try:
                return self.allocate_nowait(size)
            except ResourceExhausted:
                self._waits += 1
                if self._released is None:
                    self._released = asyncio.Event()
                self._released.clear()
                await self._released.wait()

    def statistics(self) -> dict[str, int]:
        return {
            "segments": len(self._segments),
            "segment_bytes": self.segment_bytes,
            "live_slots": sum(segment.live for segment in self._segments),
            "allocated": self._allocated,
            "waits": self._waits,
        }

    def _segment_for(self, size: int) -> _Segment | None:
        current = self._segments[self._current]
        if current.fits(size):
            return current
        # Cyclic: the first segment after the current one whose slots are all back is reset.
        count = len(self._segments)
        for step in range(1, count + 1):
            index = (self._current + step) % count
            segment = self._segments[index]
            if segment.live == 0:
                segment.top = HEADER_BYTES
                self._current = index
                return segment
        return None

    def _release(self, segment: _Segment) -> None:
        segment.live -= 1
        if not self._segments:
            return  # the ring was closed under this slot
        if segment.live == 0 and segment is self._segments[self._current]:
            segment.top = HEADER_BYTES  # nothing of it is in use: start the stack over
        if self._released is not None:
            self._released.set()
