"""The server side of the System V path: an attach cache of client segments, handing out leases.

A service's Resources owns one :class:`SysvAttachments`. Each request's descriptor is checked
and turned into a :class:`SysvLease`: a bounded, zero-copy view of the bytes the descriptor
names. A segment is attached once (its size read from IPC_STAT) and reused by later requests;
it is detached when the client says it is done (``release``), when the cache must make room, or
when the Resources stop, but never while a lease on it is open: detaching is deferred until the
last lease returns, and a view that escaped its lease keeps the mapping alive (see
``views_alive``).

What a request may name is checked on every lease: the segment must exist and not be marked for
removal, its key must name the descriptor's id, it must have been created by this server's user
and be closed to other users (no group or other permission bits), the descriptor's token must
equal the token in the segment's header (its first bytes, written by the client's ring), and
the offset and size must lie inside it. Each failure is INVALID_ARGUMENT with the segment and
the reason in the message.

What this guarantees: keys and ids are public (``/proc/sysvipc/shm``), the token is not. Only a
process that can read the segment knows its token, and a segment of the server's user with mode
0600 can be read only by processes of that user (and root). So a process of another user cannot
make the server read or write any segment, its own included (the server only attaches
segments of its own user), nor one of the server user's clients. What it does not give:
separation between processes of the server's own user, which can read each other's memory
anyway.
"""

from __future__ import annotations

import collections
import dataclasses
import hmac
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import sysv_ipc

from ..errors import InvalidArgument, UsageError
from ._lease import ReleasedOnExit
from ._spans import check_alignment, check_span, views_alive
from .sysv import TOKEN_BYTES, ShmDescriptor

__all__ = ["SysvAttachments", "SysvLease"]

log = logging.getLogger("asyncinfer.shm")

#: shm_perm.mode bit Linux sets once a segment is marked for removal (IPC_RMID).
SHM_DEST = 0o1000


def _label(segment_id: int) -> str:
    return f"SysV segment id={segment_id}"


@dataclasses.dataclass(eq=False)
class _Attachment:
    shm: sysv_ipc.SharedMemory
    key: int
    size: int
    root: npt.NDArray[np.uint8]
    leases: int = 0
    retired: bool = False  # detach as soon as the last lease returns

    def removed(self) -> bool:
        return bool(self.shm.mode & SHM_DEST)  # a fresh IPC_STAT each time


class SysvLease(ReleasedOnExit):
    """A request's view of ``[offset, offset + size)`` of one attached segment."""

    __slots__ = ("_attachment", "_owner", "descriptor")

    def __init__(
        self, owner: SysvAttachments, attachment: _Attachment, descriptor: ShmDescriptor
    ) -> None:
        self._owner: SysvAttachments | None = owner
        self._attachment = attachment
        self.descriptor = descriptor

    def array(self, dtype: npt.DTypeLike, shape: Sequence[int]) -> npt.NDArray[Any]:
        """The bytes as a writable numpy array; their size must be exactly that of the tensor."""
        dt = np.dtype(dtype)
        region = _label(self.descriptor.segment_id)
        check_alignment(region, self.descriptor.offset, dt)
        expected = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if expected != self.descriptor.size:
            raise InvalidArgument(
                f"{region}: byte size {self.descriptor.size} does not match {dt.name}"
                f"{list(shape)}, which needs {expected} bytes"
            )
        return self._bytes().view(dt).reshape(shape)

    def view(self) -> memoryview:
        return self._bytes().data

    def write(self, data: npt.NDArray[Any]) -> None:
        """Copy ``data`` into the leased bytes in place; it must fill them exactly."""
        flat = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        if flat.nbytes != self.descriptor.size:
            raise InvalidArgument(
                f"{_label(self.descriptor.segment_id)}: the result has {flat.nbytes} bytes but "
                f"the output descriptor holds {self.descriptor.size}"
            )
        self._bytes()[:] = flat

    def release(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._return(self._attachment)

    def _bytes(self) -> npt.NDArray[np.uint8]:
        if self._owner is None:
            raise UsageError("the shared-memory lease was released")
        start = self.descriptor.offset
        return self._attachment.root[start : start + self.descriptor.size]


IPC_PRIVATE = 0
KEY_MIN, KEY_MAX = -(2**31), 2**31 - 1  # key_t is a signed 32-bit integer


class SysvAttachments:
    """Attach-once cache of client segments; at most ``max_segments`` stay attached unleased."""

    def __init__(self, *, max_segments: int = 64) -> None:
        if max_segments < 1:
            raise UsageError(f"max_segments must be >= 1, not {max_segments}")
        self.max_segments = max_segments
        self._attached: collections.OrderedDict[int, _Attachment] = collections.OrderedDict()
        self._retiring: list[_Attachment] = []  # detached from the cache, waiting for leases
        self._attaches = self._detaches = 0

    def lease(self, descriptor: ShmDescriptor) -> SysvLease:
        """Check ``descriptor`` and lease its bytes; release the lease (``with``) when done."""
        self._sweep()
        attachment = self._attachment(descriptor)
        _check_token(attachment, descriptor)
        check_span(
            _label(descriptor.segment_id), descriptor.offset, descriptor.size, attachment.size
        )
        attachment.leases += 1
        return SysvLease(self, attachment, descriptor)

    def release(self, segment_id: int) -> None:
        """The client is done with a segment: detach it now, or when its last lease returns."""
        attachment = self._attached.pop(segment_id, None)
        if attachment is not None:
            self._retire(attachment)
        self._sweep()

    def close(self) -> None:
        """Detach everything not leased; leased segments detach when their leases return."""
        while self._attached:
            _, attachment = self._attached.popitem(last=False)
            self._retire(attachment)
        self._sweep()

    def statistics(self) -> dict[str, int]:
        return {
            "attached": len(self._attached),
            "retiring": len(self._retiring),
            "leases": sum(a.leases for a in (*self._attached.values(), *self._retiring)),
            "attaches": self._attaches,
            "detaches": self._detaches,
        }

    def _attachment(self, descriptor: ShmDescriptor) -> _Attachment:
        segment_id = descriptor.segment_id
        attachment = self._attached.get(segment_id)
        if attachment is not None and attachment.removed():
            self.release(segment_id)  # the client removed it; the id may come back for another
            attachment = None
        if attachment is None:
            attachment = self._attach(descriptor)
        elif attachment.key != descriptor.key:
            raise InvalidArgument(
                f"{_label(segment_id)}: the descriptor's key {descriptor.key} is not the "
                "segment's key; the segment does not belong to this client"
            )
        self._attached.move_to_end(segment_id)
        if len(self._attached) > self.max_segments:
            self._evict(keep=segment_id)
        return attachment

    def _attach(self, descriptor: ShmDescriptor) -> _Attachment:
        region = _label(descriptor.segment_id)
        if descriptor.key == IPC_PRIVATE or not KEY_MIN <= descriptor.key <= KEY_MAX:
            # Key 0 is IPC_PRIVATE (sysv_ipc would try to create a segment); a key outside
            # key_t would wrap around. Negative keys are fine: key_t is signed.
            raise InvalidArgument(
                f"{region}: key {descriptor.key} is not a segment key; expected a non-zero "
                f"32-bit key (between {KEY_MIN} and {KEY_MAX})"
            )
        try:
            # By key, then compare ids: an id alone does not prove the caller owns the segment.
            shm = sysv_ipc.SharedMemory(descriptor.key)
        except (sysv_ipc.ExistentialError, ValueError):
            raise InvalidArgument(
                f"{region}: no segment has key {descriptor.key} (it was removed or never created)"
            ) from None
        except sysv_ipc.PermissionsError:
            raise InvalidArgument(f"{region}: this server may not attach it") from None
        problem = _ownership_problem(shm, descriptor)
        if problem:
            shm.detach()
            raise InvalidArgument(f"{region}: {problem}")
        attachment = _Attachment(shm, descriptor.key, shm.size, np.frombuffer(shm, np.uint8))
        self._attaches += 1
        self._attached[descriptor.segment_id] = attachment
        return attachment

    def _evict(self, keep: int) -> None:
        # Least recently used first; leased segments and the one being leased now stay, so the
        # cache may exceed its bound while more than max_segments segments are in use at once.
        unleased = [sid for sid, a in self._attached.items() if a.leases == 0 and sid != keep]
        for segment_id in unleased[: max(0, len(self._attached) - self.max_segments)]:
            self.release(segment_id)

    def _retire(self, attachment: _Attachment) -> None:
        attachment.retired = True
        if not self._try_detach(attachment):
            self._retiring.append(attachment)

    def _return(self, attachment: _Attachment) -> None:
        attachment.leases -= 1
        self._sweep()  # any retiring segment, not only this one: cheap when none is retiring

    def _sweep(self) -> None:
        # Retried on every lease, release and lease return: a segment whose view escaped its
        # lease is detached soon after that view is gone, not only at close.
        if self._retiring:
            self._retiring = [a for a in self._retiring if not self._try_detach(a)]

    def _try_detach(self, attachment: _Attachment) -> bool:
        if attachment.leases or views_alive(attachment.root):
            return False  # in use: unmapping now would pull the memory out from under a view
        del attachment.root
        attachment.shm.detach()
        self._detaches += 1
        return True


def _ownership_problem(shm: sysv_ipc.SharedMemory, descriptor: ShmDescriptor) -> str:
    if shm.id != descriptor.segment_id:
        return (
            f"key {descriptor.key} names segment id {shm.id}, not {descriptor.segment_id}; "
            "the descriptor does not belong to that segment"
        )
    if shm.mode & SHM_DEST:
        return "the segment was removed"
    if shm.cuid != os.geteuid():
        return f"the segment belongs to uid {shm.cuid}, not to this server's uid {os.geteuid()}"
    if shm.mode & 0o077:
        return (
            f"the segment is open to other users (mode {shm.mode & 0o777:o}); create it with "
            "mode 0600, as SysvRing does"
        )
    return ""


def _check_token(attachment: _Attachment, descriptor: ShmDescriptor) -> None:
    """The descriptor's token must be the one in the segment's header (compared in constant
    time; the header is read afresh, so a client that replaces its ring's token is followed)."""
    header = attachment.root[:TOKEN_BYTES].tobytes() if attachment.size >= TOKEN_BYTES else b""
    token = descriptor.token
    if len(token) != TOKEN_BYTES or not hmac.compare_digest(token, header):
        raise InvalidArgument(
            f"{_label(descriptor.segment_id)}: the descriptor's token does not match the "
            "segment's header; only the client that created the segment may name it"
        )
