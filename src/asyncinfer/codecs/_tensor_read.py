"""Reads a FlatBuffers tensor message after checking every offset it follows: numpy views over
the received buffer, or InvalidArgument naming the field that is wrong.

The Python FlatBuffers runtime has no verifier and flatc's generated readers trust the buffer,
so this module does what FlatBuffers' C++ Verifier does, for this schema: every table's vtable,
every field, every offset and every vector must lie inside the buffer and be aligned, offsets
must not be zero, strings must end in NUL. Then the tensor checks: a known fixed-size datatype,
dimensions >= 0, and exactly product(shape) * element size bytes of data. One pass does both,
and the data is never copied: each array is a read-only view of the buffer.

This runs once per received message on the event loop, so it is written for speed. The walk
notes which bytes it read (the *header*: every table, offset, string, shape and vector length,
never the bytes of a data vector, which no check looks at), and the layout it found (name,
dtype, offset and shape of each tensor) is kept in a small LRU cache under the buffer's size,
the header's place and the header's exact bytes. A message of that size with byte-identical
bytes in those places would walk the same path to the same layout, so it skips the walk: it
costs one copy of its header (a few hundred bytes) to look it up and one ``np.frombuffer`` per
tensor. Any other message is walked in full.
"""

from __future__ import annotations

import math
import struct
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import numpy.typing as npt

from ..datatypes import BYTES, DATATYPES, Datatype
from ..errors import InvalidArgument
from ._tensor_layout import I32, IDENTIFIER, MAX_BUFFER, MAX_DIMS, TENSOR_FIELDS, U16, U32

__all__ = ["read_tensors"]

Arrays = dict[str, npt.NDArray[Any]]
#: (tensor index or None, tensor name or None, field or None): what is being read.
Where = tuple[int | None, str | None, str | None]
#: Per tensor: name, dtype, element count, offset of the data, shape (None: 1-D, ``(count,)``).
Layout = tuple[tuple[str, np.dtype[Any], int, int, tuple[int, ...] | None], ...]

#: Layouts kept, and the most header bytes kept for one (a header is copied for each lookup).
CACHE_ENTRIES = 64
MAX_CACHED_HEADER = 16 << 10
# Read places this close together, with no data vector between them, are kept as one piece of
# the header: fewer, longer pieces. The bytes between them (padding) are compared too, which
# only makes a key stricter; data bytes never are, so that new data finds the layout.
_JOIN_GAP = 64

_KNOWN = ", ".join(name for name in DATATYPES if name != BYTES)
_BY_WIRE = {dt.wire.encode(): dt for dt in DATATYPES.values() if dt.wire != BYTES}
_SHAPES = [struct.Struct(f"<{dims}q") for dims in range(MAX_DIMS + 1)]
_SLOTS = [struct.Struct(f"<{slots}H") for slots in range(len(TENSOR_FIELDS) + 1)]
_U32 = U32.unpack_from
_ROOT: Where = (None, None, "root")
_MESSAGE: Where = (None, None, "TensorMessage")
_TENSORS: Where = (None, None, "tensors")

#: Where a header lies in a buffer: (start, end) pieces, in order, disjoint.
Cut = tuple[tuple[int, int], ...]
# (size, cut, header bytes) -> layout, least recently used first. Decoding runs on the event
# loop and in client threads alike, so insertions hold the lock; a hit reads the dict and moves
# its entry to the end, each atomic.
_layouts: OrderedDict[tuple[int, Cut, bytes], Layout] = OrderedDict()
# size -> the cut of the layout cached last for a message of that size: where to look. Only a
# hint (a wrong one costs a walk); one entry per cached layout at most.
_cuts: dict[int, Cut] = {}
_lock = threading.Lock()
# Sizes of the messages walked once and not cached (at most SEEN_SIZES, then forgotten).
_seen: dict[int, None] = {}
SEEN_SIZES = 1024
#: Cache a layout the first time its message's size is seen (tests), not the second.
ADMIT_FIRST = False


def read_tensors(buf: bytes | memoryview, start: int = 0) -> Arrays:
    """The tensors of the message in ``buf[start:]``, by name, as views over ``buf``."""
    if type(buf) is not bytes and type(buf) is not memoryview:
        buf = memoryview(buf)
    size = len(buf) - start
    cut = _cuts.get(size)
    if cut is not None:
        key = (size, cut, _header(buf, start, cut))
        layout = _layouts.get(key)
        if layout is not None:
            try:  # noqa: SIM105 (contextlib.suppress costs more per hit)
                _layouts.move_to_end(key)
            except KeyError:  # another thread evicted it just now
                pass
            return _views(buf, start, layout)
    view = memoryview(buf)[start:]
    walk = _Walk(view)
    layout = walk.message()
    # Only an immutable buffer's header is kept: one that could change while it is walked
    # could be filed under bytes the walk never saw.
    if type(view.obj) is bytes and _admit(size):
        cut = walk.cut()
        if sum(b - a for a, b in cut) <= MAX_CACHED_HEADER:
            _remember((size, cut, _header(view, 0, cut)), layout)
    return _views(buf, start, layout)


def clear_cache() -> None:
    """Forget every verified layout (tests)."""
    with _lock:
        _layouts.clear()
        _cuts.clear()
        _seen.clear()


def _admit(size: int) -> bool:
    """Whether to cache the layout of a message of ``size`` bytes: not the first time that size
    comes, so that messages of ever-new sizes pay only the walk."""
    if ADMIT_FIRST or size in _seen:
        return True
    if len(_seen) >= SEEN_SIZES:
        _seen.clear()
    _seen[size] = None
    return False


def _header(buf: bytes | memoryview, at: int, cut: Cut) -> bytes:
    """The bytes of the header that ``cut`` places in the message at ``buf[at:]``."""
    if len(cut) == 1:
        ((start, end),) = cut
        piece = buf[at + start : at + end]
        return piece if type(piece) is bytes else bytes(piece)
    return b"".join([buf[at + start : at + end] for start, end in cut])


def _views(buf: bytes | memoryview, at: int, layout: Layout) -> Arrays:
    arrays: Arrays = {}
    for name, dtype, count, offset, shape in layout:
        array = np.frombuffer(buf, dtype, count, at + offset)  # positional: keywords cost more
        arrays[name] = array if shape is None else array.reshape(shape)
    return arrays


def _remember(key: tuple[int, Cut, bytes], layout: Layout) -> None:
    with _lock:
        _layouts[key] = layout
        _layouts.move_to_end(key)
        _cuts[key[0]] = key[1]
        while len(_layouts) > CACHE_ENTRIES:
            (size, cut, _), _ = _layouts.popitem(last=False)
            if _cuts.get(size) == cut:
                del _cuts[size]


class _Walk:
    """One verifying pass over a message: ``read`` holds every (start, end) of bytes it read,
    ``data`` every data vector's (start, end), which it did not read."""

    __slots__ = ("buf", "data", "read", "size")

    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.size = len(buf)
        self.read: list[tuple[int, int]] = []
        self.data: list[tuple[int, int]] = []

    def cut(self) -> Cut:
        """Every place read, in order: overlapping ones joined, and nearby ones when no data
        vector lies between them."""
        data = sorted(self.data)
        taken, count = 0, len(data)
        data_end = -1  # the furthest end of the data vectors that start before this place
        pieces: list[tuple[int, int]] = []
        first, last = -1, -1
        for start, end in sorted(self.read):
            if start > last:
                while taken < count and data[taken][0] < start:
                    data_end = max(data_end, data[taken][1])
                    taken += 1
                if first < 0:
                    first = start
                elif start - last > _JOIN_GAP or data_end > last:
                    pieces.append((first, last))
                    first = start
            last = max(last, end)
        if first >= 0:
            pieces.append((first, last))
        return tuple(pieces)

    def message(self) -> Layout:
        buf, size = self.buf, self.size
        if size < 8:
            raise _bad((None, None, "buffer"), f"has {size} bytes; a TensorMessage needs at "
                       "least 8 (root offset, file identifier)")  # fmt: skip
        if size > MAX_BUFFER:
            raise _bad((None, None, "buffer"), f"has {size} bytes; at most {MAX_BUFFER} fit")
        self.read.append((0, 8))
        if buf[4:8] != IDENTIFIER:
            raise _bad((None, None, "buffer"), f"has file identifier {bytes(buf[4:8])!r}; a "
                       f"TensorMessage has {IDENTIFIER!r}")  # fmt: skip
        root = self.follow(0, _ROOT)
        (tensors,) = self.table(root, _MESSAGE, 1)
        if not tensors:
            return ()
        start, count = self.vector_at(tensors, 4, _TENSORS)
        layout = []
        names: set[str] = set()
        for index in range(count):
            tensor = self.tensor(self.follow(start + 4 * index, (index, None, None)), index)
            if tensor[0] in names:
                raise _bad((index, None, "name"), f"{tensor[0]!r} appears twice; names must be "
                           "unique")  # fmt: skip
            names.add(tensor[0])
            layout.append(tensor)
        return tuple(layout)

    def tensor(
        self, pos: int, index: int
    ) -> tuple[str, np.dtype[Any], int, int, tuple[int, ...] | None]:
        buf = self.buf
        fields = self.table(pos, (index, None, None), 4)
        if not all(fields):
            missing = TENSOR_FIELDS[fields.index(0)]
            raise _bad((index, None, missing), "is missing; every tensor needs it")
        start, length = self.string(fields[0], (index, None, "name"))
        try:
            name = str(buf[start : start + length], "utf-8")
        except UnicodeDecodeError as exc:
            raise _bad(
                (index, None, "name"), f"is not UTF-8 ({exc.reason} at byte {exc.start})"
            ) from None
        if not name:
            raise _bad((index, None, "name"), "is empty")
        start, length = self.string(fields[1], (index, name, "datatype"))
        datatype = _datatype(bytes(buf[start : start + length]), (index, name, "datatype"))
        shape = self.shape(fields[2], (index, name, "shape"))
        where: Where = (index, name, "data")
        start, length = self.vector_at(fields[3], 1, where)  # reads its length, not its bytes
        self.data.append((start, start + length))
        elements = math.prod(shape)
        if length != elements * datatype.itemsize:
            raise _bad(where, f"has {length} bytes; shape {list(shape)} of {datatype.wire} "
                       f"needs {elements * datatype.itemsize}")  # fmt: skip
        return name, datatype.dtype, elements, start, None if shape == (elements,) else shape

    def shape(self, field: int, where: Where) -> tuple[int, ...]:
        start, dims = self.vector_at(field, 8, where)
        if dims > MAX_DIMS:
            raise _bad(where, f"has {dims} dimensions; at most {MAX_DIMS} are supported")
        self.read.append((start, start + 8 * dims))
        shape: tuple[int, ...] = _SHAPES[dims].unpack_from(self.buf, start)
        if dims and min(shape) < 0:
            raise _bad(where, f"is {list(shape)}; dimensions must be >= 0")
        return shape

    def table(self, pos: int, where: Where, slots: int) -> list[int]:
        """The positions of the table's first ``slots`` 4-byte fields (0: absent), all checked."""
        buf, size = self.buf, self.size
        if pos % 4 or pos + 4 > size:
            raise _bad(where, f"table at byte {pos} is misaligned or past the end of {size} bytes")
        vtable = pos - I32.unpack_from(buf, pos)[0]
        if vtable % 2 or vtable < 0 or vtable + 4 > size:
            raise _bad(where, f"vtable at byte {vtable} is misaligned or outside the {size} bytes")
        vsize = U16.unpack_from(buf, vtable)[0]
        if vsize % 2 or vsize < 4 or vtable + vsize > size:
            raise _bad(where, f"vtable of {vsize} bytes at byte {vtable} is malformed or cut off")
        present = min(slots, (vsize - 4) // 2)
        self.read += ((pos, pos + 4), (vtable, vtable + 4 + 2 * present))
        fields = [0] * slots
        for slot, offset in enumerate(_SLOTS[present].unpack_from(buf, vtable + 4)):
            if offset:
                field = fields[slot] = pos + offset
                if field % 4 or field + 4 > size:
                    raise _bad(where, f"field {slot} at byte {field} is misaligned or past the end")
        return fields

    def follow(self, field: int, where: Where) -> int:
        """Where the 4-byte offset at ``field`` points, checked to lie inside the buffer."""
        offset: int = _U32(self.buf, field)[0]
        self.read.append((field, field + 4))
        target = field + offset
        if offset == 0 or offset >= 2**31 or target >= self.size:
            raise _bad(where, f"offset {offset} at byte {field} points outside the {self.size} "
                       "bytes")  # fmt: skip
        return target

    def vector_at(self, field: int, item: int, where: Where) -> tuple[int, int]:
        """(start, count) of the vector of ``item``-byte elements the offset at ``field`` points
        to, both checked to lie inside the buffer. Reads the offset and the count only."""
        size = self.size
        pos = self.follow(field, where)
        start = pos + 4
        if pos % 4 or start > size or start % item:
            raise _bad(where, f"vector at byte {pos} is misaligned or past the end of {size} bytes")
        self.read.append((pos, start))
        count: int = _U32(self.buf, pos)[0]
        if count * item > size - start:
            raise _bad(where, f"vector of {count} x {item} bytes at byte {start} runs past the "
                       f"end ({size})")  # fmt: skip
        return start, count

    def string(self, field: int, where: Where) -> tuple[int, int]:
        """(start, length) of the NUL-terminated string the offset at ``field`` points to."""
        start, length = self.vector_at(field, 1, where)
        if start + length >= self.size or self.buf[start + length] != 0:
            raise _bad(where, "string is not NUL-terminated inside the buffer")
        self.read.append((start, start + length + 1))
        return start, length


def _datatype(name: bytes, where: Where) -> Datatype:
    datatype = _BY_WIRE.get(name)
    if datatype is None:
        text = name.decode(errors="replace")
        what = "BYTES is not supported here" if text == BYTES else f"{text!r} is not a datatype"
        raise _bad(where, f"{what}; expected one of {_KNOWN}")
    return datatype


def _bad(where: Where, what: str) -> InvalidArgument:
    index, name, field = where
    if index is None:
        return InvalidArgument(f"{field} {what}")
    tensor = f"tensors[{index}]" if name is None else f"tensors[{index}] ({name!r})"
    return InvalidArgument(f"{tensor}.{field} {what}" if field else f"{tensor} {what}")
