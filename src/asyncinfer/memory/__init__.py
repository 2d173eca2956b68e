"""Memory: host, pinned and device allocators, memory stacks, and pools of stacks per request.

See :mod:`.allocators`, :mod:`.stack` and :mod:`.stack_pool`. Numpy views of host stacks support
DLPack (``np.from_dlpack``, ``torch.from_dlpack``) as every numpy array does.
"""

from __future__ import annotations

from .allocators import (
    Allocation,
    Allocator,
    DeviceAllocator,
    HostAllocator,
    MemoryKind,
    PinnedAllocator,
    allocator_for,
)
from .stack import DEFAULT_ALIGNMENT, MemoryStack, Region
from .stack_pool import StackPool, StackSet
from .stream import Stream, cuda_available

__all__ = [
    "DEFAULT_ALIGNMENT",
    "Allocation",
    "Allocator",
    "DeviceAllocator",
    "HostAllocator",
    "MemoryKind",
    "MemoryStack",
    "PinnedAllocator",
    "Region",
    "StackPool",
    "StackSet",
    "Stream",
    "allocator_for",
    "cuda_available",
]
