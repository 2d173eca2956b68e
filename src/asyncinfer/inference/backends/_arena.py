"""The shared-memory arena between the server and one process instance, and its tensor codec.

One POSIX shared-memory object per instance, created by the server (its name unlinked at once)
and mapped by the instance process through an inherited descriptor. Only one execute is in
flight per instance, so the layout is a bump allocation per execute: the server writes request
inputs into the first half, the instance writes response outputs into the second half. The pipe
carries only ``TensorMeta`` tuples (name, dtype, shape, offset, size), never array data.

After an execute's inputs come its requests' cancellation flags, one byte each: the server sets
a request's byte when its caller goes away, and the model's ``Request.cancelled()`` in the
instance reads it (:class:`Flag`), no message, no system call. They are written as zeros with
every execute's inputs, so a flag never outlives its request, nor a restart of the instance.
"""

from __future__ import annotations

import _posixshmem
import contextlib
import mmap
import os
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ...datatypes import deserialize_bytes, serialize_bytes

__all__ = [
    "Arena",
    "ArenaFull",
    "Flag",
    "TensorMeta",
    "read_tensors",
    "write_flags",
    "write_tensors",
]

Array = npt.NDArray[Any]
#: (name, numpy dtype string or "BYTES", shape, offset, byte size)
TensorMeta = tuple[str, str, tuple[int, ...], int, int]
BYTES = "BYTES"
_ALIGN = 64


class ArenaFull(Exception):
    """The tensors of one execute do not fit in their half of the arena."""

    def __init__(self, needed: int, available: int) -> None:
        super().__init__(f"needs {needed} bytes, the arena half holds {available}")
        self.needed = needed
        self.available = available


class Arena:
    """A mapped shared-memory object, known by its descriptor only.

    ``create`` makes the object and unlinks its name at once: it lives exactly as long as a
    descriptor or a mapping of it, so a server killed outright leaves nothing in /dev/shm. The
    server keeps the descriptor open and hands it to every (re)started instance process, which
    maps it with ``attach``.
    """

    def __init__(self, fd: int, size: int, *, keep_fd: bool) -> None:
        self._map = mmap.mmap(fd, size)
        self.fd: int | None = fd if keep_fd else None
        if not keep_fd:
            os.close(fd)  # the mapping keeps the memory
        self.size = size
        self.view = memoryview(self._map)
        self.half = size // 2

    @classmethod
    def create(cls, size: int) -> Arena:
        name = f"/asyncinfer-{os.getpid()}-{secrets.token_hex(8)}"
        fd = _posixshmem.shm_open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _posixshmem.shm_unlink(name)
            os.ftruncate(fd, size)
            return cls(fd, size, keep_fd=True)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def attach(cls, fd: int, size: int) -> Arena:
        return cls(fd, size, keep_fd=False)

    def close(self) -> None:
        self.view.release()
        # BufferError: a numpy view over the arena is still alive; unmapping would be unsafe,
        # so the mapping stays until the process exits.
        with contextlib.suppress(BufferError):
            self._map.close()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _align(offset: int) -> int:
    return (offset + _ALIGN - 1) // _ALIGN * _ALIGN


def write_tensors(
    arena: Arena, start: int, limit: int, arrays: Mapping[str, Array]
) -> tuple[list[TensorMeta], int]:
    """Copy ``arrays`` into ``arena[start:limit]``; their metas and the next free offset."""
    metas: list[TensorMeta] = []
    offset = start
    for name, array in arrays.items():
        if array.dtype == np.object_:
            data: bytes | memoryview = serialize_bytes(array)
            kind = BYTES
        else:
            contiguous = np.ascontiguousarray(array)
            data = memoryview(contiguous.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
            kind = contiguous.dtype.str
        offset = _align(offset)
        end = offset + len(data)
        if end > limit:
            raise ArenaFull(end - start + _need_rest(arrays, name), limit - start)
        arena.view[offset:end] = data
        metas.append((name, kind, tuple(int(d) for d in array.shape), offset, len(data)))
        offset = end
    return metas, offset


def _need_rest(arrays: Mapping[str, Array], after: str) -> int:
    names = list(arrays)
    return sum(int(arrays[n].nbytes) for n in names[names.index(after) + 1 :])


def read_tensors(arena: Arena, metas: Sequence[TensorMeta], *, copy: bool) -> dict[str, Array]:
    """Arrays for ``metas``: read-only views into the arena, or copies when ``copy``."""
    arrays: dict[str, Array] = {}
    for name, kind, shape, offset, size in metas:
        buffer = arena.view[offset : offset + size]
        if kind == BYTES:
            count = int(np.prod(shape)) if shape else 1
            arrays[name] = deserialize_bytes(buffer, count, what=f"tensor '{name}'").reshape(shape)
            continue
        array = np.frombuffer(buffer, dtype=np.dtype(kind)).reshape(shape)
        if copy:
            array = array.copy()
        else:
            array.flags.writeable = False
        arrays[name] = array
    return arrays


def write_flags(arena: Arena, start: int, limit: int, count: int) -> int:
    """Zero ``count`` flag bytes in ``arena[start:limit]``, after an execute's inputs; the
    first one's offset (ArenaFull when they do not fit)."""
    offset = _align(start)
    if offset + count > limit:
        raise ArenaFull(offset + count - start, limit - start)
    arena.view[offset : offset + count] = bytes(count)
    return offset


class Flag:
    """One request's cancellation flag as a process instance sees it: ``cancelled`` reads its
    byte in the arena while the execute runs; ``freeze`` (when the execute has returned and the
    byte may go to the next execute) keeps the last value read."""

    __slots__ = ("_arena", "_frozen", "_offset")

    def __init__(self, arena: Arena, offset: int) -> None:
        self._arena = arena
        self._offset = offset
        self._frozen: bool | None = None

    @property
    def cancelled(self) -> bool:
        frozen = self._frozen
        if frozen is not None:
            return frozen
        return self._arena.view[self._offset] != 0

    def freeze(self) -> None:
        self._frozen = self.cancelled
