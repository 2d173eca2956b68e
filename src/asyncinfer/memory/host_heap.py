"""The process heap for large tensors: glibc malloc told to reuse big blocks instead of mapping
fresh pages for each.

By default glibc serves a block above its mmap threshold (128 KiB, raised as such blocks are
freed) with a fresh ``mmap`` and unmaps it on ``free``. A server moving 4 MiB tensors then
pays, on every request and for every copy (gRPC's receive buffer, the request's bytes, the
reply's), a page fault and a zeroed page per 4 KiB, and an unmap after: measured here, that was
about half the server's CPU per 4 MiB request, for a bare grpc.aio server as much as for ours.
:func:`tune_host_heap` raises the mmap threshold to glibc's maximum (32 MiB on 64-bit) and
lets freed memory stay in the heap (up to ``TRIM_BYTES`` unused at its top), so the next
request's blocks are pages already mapped.

It is process-wide, applied once by each process that serves: every process ``asyncinfer.serve``
runs (alone or as a worker, whatever its services) and each inference server as it is built
(asyncinfer.inference.app, which may run embedded). Elsewhere than glibc (musl, macOS) it does
nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_BYTES", "tune_host_heap"]

log = logging.getLogger("asyncinfer.memory")

#: Blocks up to this size come from the heap (glibc's ceiling for the threshold on 64-bit).
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
#: Unused memory the heap keeps at its top before returning it to the system.
TRIM_BYTES = 256 * 1024 * 1024

# mallopt parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_tuned: bool | None = None


def tune_host_heap() -> bool:
    """Apply the settings above to this process's malloc; whether they took (cached: once per
    process). False, with a debug log line, where the C library is not glibc."""
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    libc_name, _ = platform.libc_ver()
    if libc_name != "glibc":
        log.debug("host heap left as it is: the C library is %r, not glibc", libc_name or "?")
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done: bool = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    done = bool(mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES) == 1) and done
    if not done:
        log.debug("host heap: glibc refused mallopt")
    _tuned = done
    return done
