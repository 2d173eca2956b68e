"""The region registry of Triton's system shared-memory extension (POSIX shm_open regions).

A client creates a POSIX shared-memory object, registers it under a name with
``register(name, key, offset, byte_size)``, and then points request inputs and outputs at
``(name, offset, byte_size)``. This registry opens each region once, hands requests bounded
leases on it, and closes it on unregister.

Rules that matter here:

- Registration checks come in Triton's order, with its texts: a key of slashes only, then a key
  with Triton's reserved prefix ``triton_python_backend_shm_region_`` (whether it exists or
  not), then the open (INTERNAL "Unable to open shared memory region: '<key>'", before any size
  is looked at), then offset and size against the object ("invalid args"), then a name already
  registered ("already in manager"), then the bound on the number of regions.
- The key is the name of a POSIX object, never a path: leading '/'s, then no '/', no '..', no
  NUL and no reserved prefix (glibc keeps named semaphores as ``sem.*`` in the same directory).
  Any other key is never opened; it is answered as an open that failed, with the reason. A key
  that does not exist is an error naming it; nothing is ever created.
- Only a regular file in /dev/shm owned by the server's own user is opened: it is opened with
  O_NOFOLLOW and O_NONBLOCK and checked with fstat on the descriptor it gave (no race between a
  check and the open), so a symlink, a directory, a socket or a FIFO is a failed open, and
  another user's object is INVALID_ARGUMENT naming the key.
- The region belongs to the client: this module never unlinks it. That is why it opens the
  object itself instead of using ``multiprocessing.shared_memory``, whose resource tracker
  unlinks segments it saw at process exit on Python < 3.13.
- **The server never maps a client's region.** A mapping of a file that its owner later shrinks
  (ftruncate) raises SIGBUS on the first access past the new end, and no check made before the
  access can exclude that: the client may shrink it right after the check (the class of bug of
  CVE-2025-23319/23320/23334 in Triton). So inputs are read with ``preadv`` into server memory
  (one copy in) and outputs written with ``pwrite`` (one copy out, as the copy into a mapping
  was): the kernel bounds every access by the object's size at that instant, and a short read
  or a region that shrank below its registered end is INVALID_ARGUMENT naming the region.
- One descriptor per region, and a bounded number of regions (``max_regions``, by default a
  quarter of the process's descriptor limit, at most 4096): one more register answers
  RESOURCE_EXHAUSTED naming the bound, and so does a descriptor limit reached anyway.
- A region in use by a request is not closed under it. Each request holds a lease; unregister
  removes the name at once (so it can be registered again) but defers the close until the last
  lease returns.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import resource
import stat
import sys
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import (
    AlreadyExists,
    Internal,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    UsageError,
    echo,
)
from ._lease import ReleasedOnExit
from ._spans import check_lease_span

__all__ = [
    "RESERVED_PREFIXES",
    "TRITON_RESERVED_PREFIX",
    "ReadBuffers",
    "RegionLease",
    "RegionStatus",
    "SystemShmRegistry",
    "check_key",
    "default_max_regions",
]

log = logging.getLogger("asyncinfer.shm")

#: Names in /dev/shm that belong to something else than a client's tensor region.
RESERVED_PREFIXES = ("sem.", ".")
#: The prefix of the regions Triton's python backend makes for itself; never a client's.
TRITON_RESERVED_PREFIX = "triton_python_backend_shm_region_"
NAME_MAX = 255
#: Where glibc's shm_open keeps POSIX shared-memory objects on Linux.
SHM_DIR = "/dev/shm"
_OPEN_FLAGS = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def default_max_regions() -> int:
    """A quarter of this process's descriptor limit (RLIMIT_NOFILE), between 16 and 4096."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 4096 if soft == resource.RLIM_INFINITY else max(16, min(4096, soft // 4))


@dataclasses.dataclass(frozen=True, slots=True)
class RegionStatus:
    name: str
    key: str
    offset: int
    byte_size: int


def _label(name: str) -> str:
    return f"shared memory region '{echo(name)}'"


def check_key(name: str, key: str) -> str:
    """The key as shm_open wants it ('/name'), checked in Triton's order: a key of slashes only
    or with Triton's reserved prefix is INVALID_ARGUMENT with Triton's text; a key that could
    become a path is never opened and answers as a failed open (INTERNAL), with the reason."""
    body = key.lstrip("/")
    if not body:
        raise InvalidArgument(
            f"cannot register shared memory region '{echo(name)}' - invalid shm key '{echo(key)}'"
        )
    if body.startswith(TRITON_RESERVED_PREFIX):
        raise InvalidArgument(
            f"cannot register shared memory region '{echo(name)}' with key '{echo(key)}' as the "
            f"key contains the reserved prefix '{TRITON_RESERVED_PREFIX}'"
        )
    problem = ""
    if "/" in body:
        problem = "it contains a path separator '/' after the leading ones"
    elif ".." in body:
        problem = "it contains '..'"
    elif "\0" in body:
        problem = "it contains a NUL character"
    elif body.startswith(RESERVED_PREFIXES):
        problem = f"it starts with a reserved prefix ({', '.join(RESERVED_PREFIXES)})"
    elif len(body.encode("utf-8", "surrogatepass")) > NAME_MAX:
        problem = f"it is longer than {NAME_MAX} bytes"
    if problem:
        raise _open_failed(
            key, f"{problem}; expected a POSIX shared-memory name such as '/my_region'"
        )
    return "/" + body


def _open_failed(key: str, reason: str = "") -> Internal:
    """Triton's answer to a region that cannot be opened (its status, INTERNAL, included)."""
    text = f"Unable to open shared memory region: '{echo(key)}'"
    return Internal(f"{text} ({reason})" if reason else text)


class _Region:
    """One registered region: its descriptor, and how many requests use it."""

    def __init__(self, status: RegionStatus, fd: int) -> None:
        self.status = status
        self.fd = fd
        self.users = 0
        self.retired = False

    def close(self) -> bool:
        """Close the descriptor; False (nothing done) while a request holds a lease on it."""
        if self.users:
            return False
        os.close(self.fd)
        return True

    def check_size(self) -> None:
        """The object must still hold the registered span (the client may have shrunk it)."""
        end = self.status.offset + self.status.byte_size
        current = os.fstat(self.fd).st_size
        if end > current:
            raise InvalidArgument(
                f"{_label(self.status.name)}: its key '{echo(self.status.key)}' now holds "
                f"{current} bytes, less than the registered offset + byte_size {end}"
            )


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
        """A copy of the leased bytes, read now through the region's descriptor (never a map of
        the client's memory: see the module docstring)."""
        region = self._live()
        region.check_size()
        assert self._owner is not None
        buffer = self._owner.buffers.take(self.byte_size)
        position = region.status.offset + self.offset
        done = 0
        while done < self.byte_size:
            read = os.preadv(region.fd, [buffer[done:].data], position + done)
            if read == 0:  # the client shrank the object after the size check
                raise InvalidArgument(
                    f"{_label(self.name)}: the region ended after {self.offset + done} of "
                    f"the {self.offset + self.byte_size} bytes this request reads"
                )
            done += read
        return buffer.data

    def array(self, dtype: npt.DTypeLike, shape: Sequence[int]) -> npt.NDArray[Any]:
        """A copy of the leased bytes as a numpy array; they must be exactly the tensor's size."""
        dt = np.dtype(dtype)
        expected = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if expected != self.byte_size:
            raise InvalidArgument(
                f"{_label(self.name)}: shared_memory_byte_size {self.byte_size} does not match "
                f"{dt.name}{list(shape)}, which needs {expected} bytes"
            )
        return np.frombuffer(self.view(), dt).reshape(shape)

    def write(self, data: bytes | memoryview | npt.NDArray[Any]) -> int:
        """Write ``data`` to the start of the leased bytes; returns how many were written."""
        if isinstance(data, np.ndarray):
            data = np.ascontiguousarray(data).reshape(-1).view(np.uint8).data
        source = memoryview(data).cast("B")
        nbytes = source.nbytes
        if nbytes > self.byte_size:
            raise InvalidArgument(
                f"{_label(self.name)}: the output needs {nbytes} bytes but "
                f"shared_memory_byte_size is {self.byte_size}"
            )
        region = self._live()
        # A region shrunk after this check makes pwrite extend the client's object (sparse),
        # which harms no one; it can never fault the server.
        region.check_size()
        position = region.status.offset + self.offset
        done = 0
        while done < nbytes:
            done += os.pwrite(region.fd, source[done:], position + done)
        return nbytes

    def _live(self) -> _Region:
        if self._owner is None:
            raise UsageError(f"the lease on {_label(self.name)} was released")
        return self._region

    def release(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._return(self._region)


class ReadBuffers:
    """Server memory that inputs are read into, reused once no view of it is left.

    A fresh buffer of a large tensor costs a page fault per page on first touch (more than the
    copy itself), so up to ``keep`` buffers of at most ``largest`` bytes are kept and handed out
    again when the arrays of the request that used one are gone; a buffer
    still viewed (a model kept its input) is simply not reused.
    """

    def __init__(self, *, keep: int = 4, largest: int = 64 << 20) -> None:
        self.keep = keep
        self.largest = largest
        self._kept: list[npt.NDArray[np.uint8]] = []
        self._lock = threading.Lock()  # leases may be read from pool threads

    def take(self, size: int) -> npt.NDArray[np.uint8]:
        """``size`` bytes of server memory (contents undefined)."""
        if size > self.largest:
            return np.empty(size, np.uint8)
        with self._lock:
            free = [i for i in range(len(self._kept)) if self._unused(i)]
            fits = [i for i in free if self._kept[i].nbytes >= size]
            if fits:
                return self._kept[fits[0]][:size]
            root = np.empty(max(size, 1 << 16), np.uint8)
            if len(self._kept) < self.keep:
                self._kept.append(root)
            elif free:  # every kept buffer is in use or too small: replace the smallest unused
                self._kept[min(free, key=lambda i: self._kept[i].nbytes)] = root
            return root[:size]

    def _unused(self, index: int) -> bool:
        # Every view handed out is a slice of a kept root, and numpy keeps a reference to the
        # root in each; with none left, the list and getrefcount's argument are the only two.
        return sys.getrefcount(self._kept[index]) <= 2


class SystemShmRegistry:
    """Registered POSIX regions by name; at most ``max_regions`` at once."""

    def __init__(self, *, max_regions: int | None = None) -> None:
        self.buffers = ReadBuffers()
        self.max_regions = default_max_regions() if max_regions is None else max_regions
        if self.max_regions < 1:
            raise UsageError(f"max_regions must be >= 1, not {self.max_regions}")
        self._regions: dict[str, _Region] = {}
        self._retiring: list[_Region] = []

    def register(self, name: str, key: str, offset: int, byte_size: int) -> None:
        """Open ``key`` and register ``[offset, offset + byte_size)`` of it as ``name``; the
        checks in Triton's order (module docstring)."""
        self._sweep()
        if not name:
            raise InvalidArgument("system shared memory: a region name is required")
        path = check_key(name, key)
        status = RegionStatus(name, key, offset, byte_size)
        fd = _open_own_regular_file(_label(name), key, SHM_DIR + path)
        try:
            size = os.fstat(fd).st_size
            if offset < 0 or byte_size <= 0 or offset + byte_size > size:
                raise InvalidArgument(
                    f"failed to register shared memory region '{echo(name)}': invalid args"
                )
            if name in self._regions:
                raise AlreadyExists(f"shared memory region '{echo(name)}' already in manager")
            if len(self._regions) + len(self._retiring) >= self.max_regions:
                raise ResourceExhausted(
                    f"cannot register {_label(name)}: at most {self.max_regions} system "
                    "shared-memory regions may be registered at once (max_regions); unregister "
                    "regions first"
                )
        except BaseException:
            os.close(fd)
            raise
        self._regions[name] = _Region(status, fd)

    def unregister(self, name: str = "") -> None:
        """Unregister ``name``, or every region when ``name`` is empty; unknown names are fine."""
        names = list(self._regions) if not name else [name] if name in self._regions else []
        for each in names:
            self._retire(self._regions.pop(each))
        self._sweep()

    def _sweep(self) -> None:
        # A region unregistered while requests held leases closes when its last lease returns;
        # retried on every register, unregister and lease return.
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
        check_lease_span(name, offset, byte_size, region.status.byte_size)
        region.check_size()
        region.users += 1
        return RegionLease(self, region, offset, byte_size)

    def close(self) -> None:
        self.unregister("")
        for region in self._retiring:
            log.warning("%s is still leased after stop; left open", _label(region.status.name))

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


_OPEN_PROBLEMS = {
    errno.ENOENT: "",  # Triton's text says it all
    errno.ELOOP: "is a symbolic link; only regular files in /dev/shm are opened",
    errno.EISDIR: "is a directory; only regular files in /dev/shm are opened",
    errno.ENXIO: "is a socket or a device; only regular files in /dev/shm are opened",
    errno.EACCES: "may not be opened by the server",
    errno.EPERM: "may not be opened by the server",
}


def _open_own_regular_file(label: str, key: str, path: str) -> int:
    """A descriptor on ``path`` if it is a regular file owned by this process's user."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            raise ResourceExhausted(
                f"cannot register {label}: the server has no file descriptor left "
                f"(RLIMIT_NOFILE); unregister regions first"
            ) from None
        problem = _OPEN_PROBLEMS.get(exc.errno or 0)
        reason = (f"it {problem}" if problem else "") if problem is not None else exc.strerror
        raise _open_failed(key, reason or "") from None
    info = os.fstat(fd)
    problem = ""
    if not stat.S_ISREG(info.st_mode):
        problem = "is not a regular file; only regular files in /dev/shm are opened"
    elif info.st_uid != os.geteuid():
        problem = f"belongs to uid {info.st_uid}, not to this server's uid {os.geteuid()}"
    if problem:
        os.close(fd)
        raise InvalidArgument(f"{label}: system shared memory key '{echo(key)}' {problem}")
    return fd
