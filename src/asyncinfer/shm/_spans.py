"""Bounds and alignment checks for every shared-memory access, with messages naming the region.

Every read or write through shared memory goes through :func:`check_span` first: a request may
name any offset and size, and a view past the end of a mapping would read another object's
memory or fault. The messages say which region, which bound and what was expected, because the
client that sent them is usually a program whose author needs to find the mistake.
"""

from __future__ import annotations

import sys

import numpy as np

from ..errors import InvalidArgument, echo

__all__ = ["check_alignment", "check_lease_span", "check_span", "views_alive"]


def check_span(region: str, offset: int, size: int, limit: int) -> None:
    """Reject ``[offset, offset + size)`` unless it lies inside ``[0, limit)`` of ``region``."""
    if offset < 0:
        raise InvalidArgument(f"{region}: offset {offset} is negative; expected 0..{limit}")
    if size < 0:
        raise InvalidArgument(f"{region}: byte size {size} is negative")
    if offset > limit or size > limit - offset:
        raise InvalidArgument(
            f"{region}: bytes [{offset}, {offset + size}) are out of bounds; the region holds "
            f"{limit} bytes, so offset + byte size must be <= {limit}"
        )


def check_lease_span(name: str, offset: int, size: int, limit: int) -> None:
    """Reject a request's ``[offset, offset + size)`` of registered region ``name`` (``limit``
    bytes) unless it lies inside it; Triton's texts, which its clients match on."""
    if offset < 0 or offset >= limit:
        raise InvalidArgument(f"Invalid offset for shared memory region: '{echo(name)}'")
    if size < 0 or size > limit - offset:
        raise InvalidArgument(
            f"Invalid offset + byte size for shared memory region: '{echo(name)}'"
        )


def check_alignment(region: str, offset: int, dtype: np.dtype[np.generic]) -> None:
    """Reject an offset that is not a multiple of the element size of ``dtype``."""
    if offset % dtype.itemsize:
        raise InvalidArgument(
            f"{region}: offset {offset} is not aligned for {dtype.name}; expected a multiple "
            f"of {dtype.itemsize}"
        )


def views_alive(root: np.ndarray[tuple[int, ...], np.dtype[np.uint8]]) -> bool:
    """Whether any numpy view or memoryview derived from ``root`` is still referenced.

    sysv_ipc does not refuse to detach while buffers are exported, so detaching under a live
    view would leave it pointing at unmapped memory (a crash, or worse, a read of whatever is
    mapped there next). Every view we hand out is a slice of one root array, and numpy keeps a
    reference to that root in each of them; counting those references is the one check that
    also catches a view that escaped its lease.
    """
    return sys.getrefcount(root) > _BASELINE


def _baseline() -> int:
    holder = np.zeros(1, np.uint8)  # stands for the owner's attribute
    return sys.getrefcount(holder) + 1  # + views_alive's own parameter


_BASELINE = _baseline()
