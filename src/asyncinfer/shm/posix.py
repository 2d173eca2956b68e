"""The region registry of Triton's system shared-memory extension (POSIX shm_open regions).

A client creates a POSIX shared-memory object, registers it under a name with
``register(name, key, offset, byte_size)``, and then points request inputs and outputs at
``(name, offset, byte_size)``. This registry maps each region once, hands requests bounded
leases on it, and unmaps it on unregister.

Rules that matter here:

- The key is the name of a POSIX object, never a path: one optional leading '/', then no '/',
  no '..', no NUL and no reserved prefix (glibc keeps named semaphores as ``sem.*`` in the same
  directory). A key that does not exist is an error naming it; nothing is ever created.
- The region belongs to the client: this module never unlinks it. That is why it calls
  ``_posixshmem.shm_open`` itself instead of using ``multiprocessing.shared_memory``, whose
  resource tracker unlinks segments it saw at process exit on Python < 3.13.
- A region in use by a request is not unmapped under it. Each request holds a lease; unregister
  removes the name at once (so it can be registered again) but defers the unmap until the last
  lease returns. ``mmap.close`` itself refuses while any view of the map is alive, which also
  covers a view that escaped its lease: such a map is retried later instead of closed.
- The region's file descriptor stays open while it is registered, so each lease can check the
  object's current size: a client that shrinks its object after registering gets an error, not
  a SIGBUS in the server.
"""

from __future__ import annotations

import _posixshmem
import dataclasses
import logging
import mmap
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import AlreadyExists, InvalidArgument, NotFound, ResourceExhausted, UsageError
from ._lease import ReleasedOnExit
from ._spans import check_span
from .cuda import PinnedMemory, pin_host_memory

__all__ = ["RESERVED_PREFIXES", "RegionLease", "RegionStatus", "SystemShmRegistry", "check_key"]

log = logging.getLogger("asyncinfer.shm")

#: Names in /dev/shm that belong to something else than a client's tensor region.
RESERVED_PREFIXES = ("sem.", ".")
NAME_MAX = 255


@dataclasses.dataclass(frozen=True, slots=True)
class RegionStatus:
    name: str
    key: str
    offset: int
    byte_size: int


def _label(name: str) -> str:
    return f"shared memory region '{name}'"


def check_key(key: str) -> str:
    """The key as shm_open wants it ('/name'); InvalidArgument if it could become a path."""
    body = key[1:] if key.startswith("/") else key
    problem = ""
    if not body:
        problem = "it is empty"
    elif "/" in body:
        problem = "it contains a path separator '/' after the leading one"
    elif ".." in body:
        problem = "it contains '..'"
    elif "\0" in body:
        problem = "it contains a NUL character"
    elif body.startswith(RESERVED_PREFIXES):
        problem = f"it starts with a reserved prefix ({', '.join(RESERVED_PREFIXES)})"
    elif len(body.encode()) > NAME_MAX:
        problem = f"it is longer than {NAME_MAX} bytes"
    if problem:
        raise InvalidArgument(
            f"system shared memory key {key!r} is not valid: {problem}; expected a POSIX "
            "shared-memory name such as '/my_region'"
        )
    return "/" + body


class _Region:
    """One registered region: its descriptor and mapping, and how many requests use it."""

    def __init__(self, status: RegionStatus, fd: int, mapping: mmap.mmap, base: int) -> None:
        self.status = status
        self.fd = fd
        self.mapping = mapping
        self.base = base  # where offset 0 of the region lies in the mapping
        self.users = 0
        self.retired = False
        self.pinned: PinnedMemory | None = None

    def close(self) -> bool:
        """Unmap and close; False (nothing done) while any view of the mapping is alive."""
        if self.users:
            return False
        if self.pinned is not None:
            self.pinned.unpin()  # releases its view of the mapping, so the unmap can proceed
            self.pinned = None
        try:
            self.mapping.close()
        except BufferError:
            return False
        os.close(self.fd)
        return True


class RegionLease(ReleasedOnExit):
    """A request's bounded view of ``[offset, offset + byte_size)`` of a registered region."""

    __slots__ = ("_owner", "_region", "byte_size", "name", "offset")

    def __init__(
        self, owner: SystemShmRegistry, region: _Region, offset: int, byte_size: int
    ) -> None:
        self._owner: SystemShmRegistry | None = owner
        self._region = region
        self.name = region.status.name
        self.offset = offset
        self.byte_size = byte_size

    def view(self) -> memoryview:
        """The leased bytes, writable; do not keep it past ``release``."""
        if self._owner is None:
            raise UsageError(f"the lease on {_label(self.name)} was released")
        start = self._region.base + self.offset
        return memoryview(self._region.mapping)[start : start + self.byte_size]

    def array(self, dtype: npt.DTypeLike, shape: Sequence[int]) -> npt.NDArray[Any]:
        """The leased bytes as a numpy array; they must be exactly the tensor's size."""
        dt = np.dtype(dtype)
        expected = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if expected != self.byte_size:
            raise InvalidArgument(
                f"{_label(self.name)}: shared_memory_byte_size {self.byte_size} does not match "
                f"{dt.name}{list(shape)}, which needs {expected} bytes"
            )
        return np.frombuffer(self.view(), dt).reshape(shape)

    def write(self, data: bytes | memoryview | npt.NDArray[Any]) -> int:
        """Copy ``data`` to the start of the leased bytes; returns how many were written."""
        if isinstance(data, np.ndarray):
            data = np.ascontiguousarray(data).reshape(-1).view(np.uint8).data
        source = memoryview(data)
        nbytes = source.nbytes
        if nbytes > self.byte_size:
            raise InvalidArgument(
                f"{_label(self.name)}: the output needs {nbytes} bytes but "
                f"shared_memory_byte_size is {self.byte_size}"
            )
        target = self.view()
        target[:nbytes] = source.cast("B")
        target.release()
        return nbytes

    def release(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._return(self._region)


class SystemShmRegistry:
    """Registered POSIX regions by name; at most ``max_regions`` at once."""

    def __init__(self, *, max_regions: int = 4096) -> None:
        self.max_regions = max_regions
        self._regions: dict[str, _Region] = {}
        self._retiring: list[_Region] = []

    def register(self, name: str, key: str, offset: int, byte_size: int) -> None:
        self._sweep()
        if not name:
            raise InvalidArgument("system shared memory: a region name is required")
        if name in self._regions:
            raise AlreadyExists(f"{_label(name)} is already registered; unregister it first")
        if len(self._regions) >= self.max_regions:
            raise ResourceExhausted(f"at most {self.max_regions} regions may be registered")
        path = check_key(key)
        if offset < 0 or byte_size <= 0:
            raise InvalidArgument(
                f"{_label(name)}: offset {offset} and byte_size {byte_size} must be >= 0 and > 0"
            )
        self._regions[name] = _open_region(RegionStatus(name, key, offset, byte_size), path)

    def unregister(self, name: str = "") -> None:
        """Unregister ``name``, or every region when ``name`` is empty; unknown names are fine."""
        names = list(self._regions) if not name else [name] if name in self._regions else []
        for each in names:
            self._retire(self._regions.pop(each))
        self._sweep()

    def _sweep(self) -> None:
        # A region whose view escaped a lease (a numpy input still referenced when the request
        # closed its leases) could not close when its last lease returned; try again on every
        # register, unregister and lease return, so it is unmapped soon after that view is gone
        # and not only at server stop.
        if self._retiring:
            self._retiring = [r for r in self._retiring if not r.close()]

    def __contains__(self, name: object) -> bool:
        return name in self._regions

    def status(self, name: str = "") -> list[RegionStatus]:
        if not name:
            return [region.status for region in self._regions.values()]
        if name not in self._regions:
            raise NotFound(f"Unable to find system shared memory region: '{name}'")
        return [self._regions[name].status]

    def lease(self, name: str, offset: int, byte_size: int) -> RegionLease:
        """Check ``[offset, offset + byte_size)`` against region ``name`` and lease it."""
        region = self._regions.get(name)
        if region is None:
            raise InvalidArgument(f"Unable to find shared memory region: '{name}'")
        check_span(_label(name), offset, byte_size, region.status.byte_size)
        current = os.fstat(region.fd).st_size
        if region.status.offset + region.status.byte_size > current:
            raise InvalidArgument(
                f"{_label(name)}: its key {region.status.key!r} now holds {current} bytes, less "
                f"than the registered offset + byte_size "
                f"{region.status.offset + region.status.byte_size}"
            )
        region.users += 1
        return RegionLease(self, region, offset, byte_size)

    def pin(self, name: str) -> None:
        """Page-lock region ``name`` once (cudaHostRegister) so copies between it and a GPU can
        be asynchronous; undone when the region is unmapped. FAILED_PRECONDITION without CUDA."""
        region = self._regions.get(name)
        if region is None:
            raise InvalidArgument(f"Unable to find shared memory region: '{name}'")
        if region.pinned is None:
            view = memoryview(region.mapping)[region.base : region.base + region.status.byte_size]
            try:
                region.pinned = pin_host_memory(view)
            except BaseException:
                view.release()  # a view left behind would keep the region from unmapping
                raise

    def close(self) -> None:
        self.unregister("")
        for region in self._retiring:
            log.warning("%s is still viewed after stop; left mapped", _label(region.status.name))

    def statistics(self) -> dict[str, int]:
        return {
            "regions": len(self._regions),
            "retiring": len(self._retiring),
            "leases": sum(r.users for r in (*self._regions.values(), *self._retiring)),
        }

    def _retire(self, region: _Region) -> None:
        region.retired = True
        self._retiring.append(region)  # closed by the sweep that follows, or later

    def _return(self, region: _Region) -> None:
        region.users -= 1
        self._sweep()  # any retiring region, not only this one: cheap when none is retiring


def _open_region(status: RegionStatus, path: str) -> _Region:
    label = _label(status.name)
    try:
        fd = _posixshmem.shm_open(path, os.O_RDWR, 0)
    except FileNotFoundError:
        raise InvalidArgument(
            f"{label}: system shared memory key {status.key!r} does not exist"
        ) from None
    except PermissionError:
        raise InvalidArgument(
            f"{label}: key {status.key!r} may not be opened by the server"
        ) from None
    try:
        check_span(label, status.offset, status.byte_size, os.fstat(fd).st_size)
        # mmap offsets must be page-granular: map from the page that holds `offset`.
        start = status.offset - status.offset % mmap.ALLOCATIONGRANULARITY
        length = status.offset - start + status.byte_size
        mapping = mmap.mmap(
            fd, length, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=start
        )
    except BaseException:
        os.close(fd)
        raise
    return _Region(status, fd, mapping, status.offset - start)
