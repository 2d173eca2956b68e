"""MemoryStack: bump allocation inside one block, reset all at once when its lease returns.

Per-request buffers (inputs, outputs, scratch) come from a stack instead of fresh allocations::

    x = stack.array((batch, 16), np.float32)     # a numpy view into the block
    region = stack.allocate(4096)                # raw region: .address, .nbytes
    ...
    stack.reset()                                # refused while any view is alive

Every region and every numpy view made from it keeps a reference to its :class:`Region`; the
stack counts live regions through weak references, so ``reset()`` refuses (``UsageError``) while
a caller still holds memory that the next request would overwrite. An allocation larger than
what is left raises ``ResourceExhausted`` naming the sizes.

Arrays (``array``, ``copy_in``) in host and pinned stacks are the hot path, and cost what an
``np.empty`` does: each is a numpy array over one byte array spanning the whole block, made
once. numpy points every view of such an array (slices, reshapes, views of views) at that byte
array, so the arrays alive are counted by its reference count, with no object or weak reference
per allocation.
"""

from __future__ import annotations

import math
import sys
import weakref
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError, ResourceExhausted, UsageError
from .allocators import Allocation

__all__ = ["DEFAULT_ALIGNMENT", "MemoryStack", "Region"]

#: cudaMalloc aligns to 256 bytes; TensorRT and most kernels want at least that.
DEFAULT_ALIGNMENT = 256


class Region:
    """``nbytes`` at ``address`` inside a stack. Host regions convert to numpy (zero copy);
    device regions expose ``__cuda_array_interface__`` for CuPy, Numba and PyTorch."""

    __slots__ = ("__weakref__", "_shape", "_stack", "_typestr", "address", "nbytes", "offset")

    def __init__(
        self,
        stack: MemoryStack,
        offset: int,
        nbytes: int,
        shape: tuple[int, ...] | None = None,
        typestr: str = "|u1",
    ) -> None:
        self._stack = stack  # keeps the stack (and its block) alive while the region lives
        self.offset = offset
        self.nbytes = nbytes
        self.address = stack.allocation.address + offset
        self._shape = (nbytes,) if shape is None else shape
        self._typestr = typestr

    @property
    def kind(self) -> str:
        return self._stack.allocation.kind

    @property
    def __array_interface__(self) -> dict[str, Any]:
        if not self._stack.allocation.host_accessible:
            raise AttributeError("device memory has no host view; use __cuda_array_interface__")
        return self._interface()

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        if self._stack.allocation.kind != "device":
            raise AttributeError(f"{self.kind} memory is not device memory")
        return {**self._interface(), "stream": None}

    def _interface(self) -> dict[str, Any]:
        # The shape and dtype the region was allocated for (bytes by default): numpy builds
        # the final array in one step, and its base is this region, which keeps it counted.
        return {
            "shape": self._shape,
            "typestr": self._typestr,
            "data": (self.address, False),
            "version": 3,
        }

    def numpy(self, shape: tuple[int, ...], dtype: npt.DTypeLike) -> npt.NDArray[Any]:
        """A numpy array of ``shape`` and ``dtype`` over this region (host memory only)."""
        dt = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if count > self.nbytes:
            raise UsageError(f"shape {shape} of {dt} needs {count} bytes; region has {self.nbytes}")
        return np.frombuffer(np.asarray(self), np.uint8, count).view(dt).reshape(shape)

    def __repr__(self) -> str:
        return f"<Region {self.kind} {self.nbytes} bytes at +{self.offset} of {self._stack.name!r}>"


#: numpy dtypes by the scalar types callers name them with (np.float32, ...): a dict lookup
#: instead of np.dtype() on every allocation.
_DTYPES: dict[Any, np.dtype[Any]] = {
    kind: np.dtype(kind) for kind in (*np.sctypeDict.values(), bool, int, float, complex)
}


_dtype_of = _DTYPES.get
_prod = math.prod
_ndarray = np.ndarray


class _Block:
    """A whole host block as numpy sees it (the base of a stack's byte array)."""

    __slots__ = ("__array_interface__",)

    def __init__(self, allocation: Allocation) -> None:
        self.__array_interface__ = {
            "shape": (allocation.nbytes,),
            "typestr": "|u1",
            "data": (allocation.address, False),
            "version": 3,
        }


class MemoryStack:
    """Bump allocation with alignment over one :class:`Allocation`; not thread-safe (one owner
    at a time: the lease holder)."""

    def __init__(
        self, allocation: Allocation, *, name: str = "stack", alignment: int = DEFAULT_ALIGNMENT
    ) -> None:
        if alignment < 1 or alignment & (alignment - 1):
            raise ConfigError(f"stack {name!r}: alignment must be a power of two, not {alignment}")
        self.allocation = allocation
        self._address = allocation.address
        self._capacity = allocation.nbytes
        self.name = name
        self.alignment = alignment
        self._top = 0
        self._views: set[weakref.ref[Region]] = set()
        self._high_water = 0
        self._resets = 0
        # Host and pinned blocks: one byte array over the whole block, the base of every array
        # made here; its reference count above _host_refs is the arrays alive.
        self._host: npt.NDArray[np.uint8] | None = None
        self._host_refs = 0
        if allocation.host_accessible and not allocation.freed:
            host = self._host = np.asarray(_Block(allocation))
            # Counted as _live_arrays counts: the attribute, a local name, the call's argument.
            self._host_refs = sys.getrefcount(host)

    @property
    def capacity(self) -> int:
        return self.allocation.nbytes

    @property
    def used(self) -> int:
        return self._top

    @property
    def available(self) -> int:
        return self.capacity - self._top

    def live_views(self) -> int:
        """Regions, and arrays made by ``array``/``copy_in`` (with the views made from them),
        still referenced somewhere."""
        return len(self._views) + self._live_arrays()

    def _live_arrays(self) -> int:
        host = self._host
        return 0 if host is None else sys.getrefcount(host) - self._host_refs

    def allocate(
        self,
        nbytes: int,
        *,
        alignment: int | None = None,
        shape: tuple[int, ...] | None = None,
        typestr: str = "|u1",
    ) -> Region:
        """The next ``nbytes`` whose address is a multiple of ``alignment`` (default: stack's).

        ``shape`` and ``typestr`` (numpy's array-interface type string) describe what
        ``np.asarray(region)`` gives; by default, ``nbytes`` unsigned bytes.
        """
        align = self.alignment if alignment is None else alignment
        if align < 1 or align & (align - 1):
            raise UsageError(f"stack {self.name!r}: alignment must be a power of two, not {align}")
        if nbytes < 0:
            raise UsageError(f"stack {self.name!r}: cannot allocate {nbytes} bytes")
        if self.allocation.freed:
            raise UsageError(f"stack {self.name!r} was closed; its memory is freed")
        start = self._top + (-(self.allocation.address + self._top) % align)
        if start + nbytes > self.capacity:
            raise ResourceExhausted(
                f"memory stack {self.name!r}: cannot allocate {nbytes} bytes "
                f"(alignment {align}); {self.available} of {self.capacity} bytes left"
            )
        self._top = start + nbytes  # the high-water mark is taken at reset() and statistics()
        region = Region(self, start, nbytes, shape, typestr)
        # The weak reference must itself stay referenced for its callback to run. The callback
        # runs in whichever thread drops the last reference; set.discard is atomic under the GIL.
        self._views.add(weakref.ref(region, self._views.discard))
        return region

    def array(
        self, shape: tuple[int, ...], dtype: npt.DTypeLike, *, alignment: int | None = None
    ) -> npt.NDArray[Any]:
        """An uninitialized numpy array in this stack (host and pinned stacks only)."""
        host = self._host
        if host is None:
            if self.allocation.freed:
                raise UsageError(f"stack {self.name!r} was closed; its memory is freed")
            raise UsageError(
                f"stack {self.name!r} holds device memory: use allocate() and pass the address"
            )
        # Module-level bindings below: this is every host array's path (bench/pools.py).
        dt = _dtype_of(dtype)
        if dt is None:
            dt = np.dtype(dtype)
        if type(shape) is not tuple:
            shape = tuple(shape)
        nbytes = _prod(shape) * dt.itemsize
        if nbytes < 0:
            raise UsageError(f"stack {self.name!r}: negative extent in shape {shape}")
        if alignment is None:
            align = self.alignment
        else:
            align = alignment
            if align < 1 or align & (align - 1):
                raise UsageError(
                    f"stack {self.name!r}: alignment must be a power of two, not {align}"
                )
        top = self._top
        start = top + (-(self._address + top) % align)
        end = start + nbytes
        if end > self._capacity:
            raise ResourceExhausted(
                f"memory stack {self.name!r}: cannot allocate {nbytes} bytes "
                f"(alignment {align}); {self.available} of {self.capacity} bytes left"
            )
        try:
            array = _ndarray(shape, dt, host, start)
        except ValueError:  # numpy refuses negative extents (before anything is taken)
            raise UsageError(f"stack {self.name!r}: negative extent in shape {shape}") from None
        self._top = end  # the high-water mark is taken at reset() and statistics()
        return array

    def copy_in(self, source: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """A C-contiguous copy of ``source`` in this stack (host and pinned stacks only)."""
        target = self.array(source.shape, source.dtype)
        np.copyto(target, source, casting="no")
        return target

    def owns(self, array: npt.NDArray[Any]) -> bool:
        """Whether ``array`` is a view into this stack's memory."""
        base: Any = array
        while isinstance(base, np.ndarray):
            if base is self._host:
                return True
            base = base.base
        return isinstance(base, Region) and base._stack is self

    def reset(self) -> None:
        """Forget every allocation. Refused while any region or view of it is alive."""
        live = self.live_views()
        if live:
            raise UsageError(
                f"memory stack {self.name!r} cannot reset: {live} view(s) still alive over "
                f"{self._top} of {self.capacity} bytes; drop them (copy what you keep) "
                "before the lease returns"
            )
        if self._top > self._high_water:
            self._high_water = self._top
        self._top = 0
        self._resets += 1

    def close(self) -> None:
        """Free the block; refused while views are alive (they point into it)."""
        self.reset()
        self._host = None
        if not self.allocation.freed:
            self.allocation.free()

    def statistics(self) -> dict[str, Any]:
        return {
            "kind": self.allocation.kind,
            "capacity": self.capacity,
            "used": self._top,
            "high_water": max(self._high_water, self._top),
            "live_views": self.live_views(),
            "resets": self._resets,
        }

    def __repr__(self) -> str:
        return f"<MemoryStack {self.name!r} {self.allocation.kind} {self._top}/{self.capacity}>"
