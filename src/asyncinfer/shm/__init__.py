"""Shared memory between co-located processes: the SysV path and Triton's shm extensions.

- :mod:`.sysv` (client) and :mod:`.attach` (server): the System V path of asyncinfer's own
  services, with descriptors carried by ``asyncinfer.Tensor`` messages (:mod:`.tensors`).
- :mod:`.posix`: the region registry of Triton's system shared-memory extension.
- :mod:`.cuda`: the registry of Triton's CUDA shared-memory extension and pinned staging.
"""

from __future__ import annotations

from .attach import SysvAttachments, SysvLease
from .sysv import ShmDescriptor, Slot, SysvRing

__all__ = ["ShmDescriptor", "Slot", "SysvAttachments", "SysvLease", "SysvRing"]
