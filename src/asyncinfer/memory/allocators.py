"""Allocators: page-aligned host memory, pinned host memory and device memory, one interface.

``allocate(nbytes)`` returns an :class:`Allocation` (kind, address, size) that frees itself on
``free()``. Host memory is a numpy buffer aligned to the page size; pinned memory comes from
cudaHostAlloc and device memory from cudaMalloc (or cudaMallocAsync on a stream) through
cuda-python, imported only when those kinds are used. Without CUDA they raise a ConfigError
saying what is missing, and host memory serves.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np

from .. import _cudart
from ..errors import ConfigError, UsageError
from .stream import Stream

__all__ = [
    "Allocation",
    "Allocator",
    "DeviceAllocator",
    "HostAllocator",
    "MemoryKind",
    "PinnedAllocator",
    "allocator_for",
]

MemoryKind = Literal["host", "pinned", "device"]
PAGE = mmap.PAGESIZE


class Allocation:
    """A block of memory: ``kind``, ``address``, ``nbytes``; ``free()`` returns it once."""

    __slots__ = ("_free", "_owner", "address", "kind", "nbytes")

    def __init__(
        self,
        kind: MemoryKind,
        address: int,
        nbytes: int,
        free: Callable[[], None] | None = None,
        owner: Any = None,
    ) -> None:
        self.kind = kind
        self.address = address
        self.nbytes = nbytes
        self._free = free
        self._owner = owner  # keeps a host buffer alive as long as the allocation

    @property
    def host_accessible(self) -> bool:
        return self.kind != "device"

    @property
    def freed(self) -> bool:
        return self.address == 0

    def free(self) -> None:
        if self.freed:
            raise UsageError(f"{self.kind} allocation of {self.nbytes} bytes freed twice")
        free, self._free, self._owner = self._free, None, None
        self.address = 0
        if free is not None:
            free()

    def __repr__(self) -> str:
        return f"<Allocation {self.kind} {self.nbytes} bytes at {self.address:#x}>"


class Allocator(Protocol):
    kind: MemoryKind

    def allocate(self, nbytes: int) -> Allocation: ...


def _check_size(kind: str, nbytes: int) -> None:
    if not isinstance(nbytes, int) or nbytes < 1:
        raise ConfigError(f"{kind} allocation size must be a positive int, not {nbytes!r}")


class HostAllocator:
    """Pageable host memory aligned to the page size, backed by a numpy array."""

    kind: MemoryKind = "host"

    def allocate(self, nbytes: int) -> Allocation:
        _check_size(self.kind, nbytes)
        raw = np.empty(nbytes + PAGE, dtype=np.uint8)
        skip = -raw.ctypes.data % PAGE
        buffer = raw[skip : skip + nbytes]
        return Allocation("host", buffer.ctypes.data, nbytes, owner=buffer)


class PinnedAllocator:
    """Page-locked host memory from cudaHostAlloc: what fast, async H2D/D2H copies need."""

    kind: MemoryKind = "pinned"

    def allocate(self, nbytes: int) -> Allocation:
        _check_size(self.kind, nbytes)
        cudart = _cudart.runtime()
        address = int(
            _cudart.check(
                cudart.cudaHostAlloc(nbytes, cudart.cudaHostAllocDefault), "cudaHostAlloc"
            )
        )
        return Allocation(
            "pinned",
            address,
            nbytes,
            free=lambda: _cudart.check(cudart.cudaFreeHost(address), "cudaFreeHost"),
        )


class DeviceAllocator:
    """Device memory from cudaMalloc, or stream-ordered cudaMallocAsync when given a stream."""

    kind: MemoryKind = "device"

    def __init__(self, stream: Stream | None = None) -> None:
        self.stream = stream

    def allocate(self, nbytes: int) -> Allocation:
        _check_size(self.kind, nbytes)
        cudart = _cudart.runtime()
        stream = self.stream
        if stream is None:
            address = int(_cudart.check(cudart.cudaMalloc(nbytes), "cudaMalloc"))

            def free() -> None:
                _cudart.check(cudart.cudaFree(address), "cudaFree")
        else:
            raw_stream = stream.raw
            address = int(
                _cudart.check(cudart.cudaMallocAsync(nbytes, raw_stream), "cudaMallocAsync")
            )

            def free() -> None:  # stream-ordered: freed after the work queued before it
                _cudart.check(cudart.cudaFreeAsync(address, raw_stream), "cudaFreeAsync")

        return Allocation("device", address, nbytes, free=free)


def allocator_for(kind: MemoryKind) -> Allocator:
    """The allocator of ``kind`` ("host", "pinned" or "device")."""
    if kind == "host":
        return HostAllocator()
    if kind == "pinned":
        return PinnedAllocator()
    if kind == "device":
        return DeviceAllocator()
    raise ConfigError(f"memory kind must be 'host', 'pinned' or 'device', not {kind!r}")
