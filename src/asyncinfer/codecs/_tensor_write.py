"""Writes a FlatBuffers tensor message front to back, each tensor's data written once.

flatbuffers.Builder builds back to front into a growing bytearray: the data is copied into it,
again when it grows, and again by ``Output()``. This writer lays the message out from the
front instead (FlatBuffers only asks that offsets point forward and that scalars are aligned):
one small header holds the root, the vtables, the tables, names, datatypes and shapes; the
data vectors follow, each on a 64-byte boundary. The result is a list of pieces, the arrays'
own memory among them, that the payload codec joins into the message: the only write of the
data.

Everything but the data depends only on each tensor's name, dtype and shape, so the pieces
between the data vectors are kept in a small LRU cache under exactly those: a reply of the
same names, dtypes and shapes as one before costs a dict lookup and a check of each array.

Layout, offsets from the start of the buffer::

    0   root offset -> ROOT          4   file identifier "AITM"
    8   vtable of TensorMessage      16  vtable of Tensor (shared by every tensor)
    28  ROOT: soffset, offset -> tensors vector
    36  tensors vector: count, offsets -> tables
        Tensor tables (soffset + 4 offsets each), then names, datatypes and shapes
        data vectors: length, then the bytes starting on a 64-byte boundary
"""

from __future__ import annotations

import math
import struct
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ..datatypes import BYTES, DATATYPES, Datatype, from_numpy
from ..errors import UsageError
from ._tensor_layout import DATA_ALIGNMENT, IDENTIFIER, MAX_BUFFER, MAX_DIMS
from .base import BytesLike
from .payload import framing

__all__ = ["write_message", "write_tensors"]

#: Frames kept (one per distinct tuple of names, dtypes and shapes).
CACHE_ENTRIES = 64

_ROOT_VTABLE, _TENSOR_VTABLE, _ROOT = 8, 16, 28
_TENSORS = 36
_TABLE_BYTES = 20  # soffset + 4 offsets
# vtable: its size, the table's size, then each field's offset in the table.
_PREAMBLE = (
    struct.pack("<I4s", _ROOT, IDENTIFIER)
    + struct.pack("<HHHxx", 6, 8, 4)
    + struct.pack("<HHHHHH", 12, _TABLE_BYTES, 4, 8, 12, 16)
    + struct.pack("<iI", _ROOT - _ROOT_VTABLE, _TENSORS - (_ROOT + 4))
)
_LENGTH = struct.Struct("<I")
_PADS = [bytes(4 - k % 4) for k in range(4)]  # a string's NUL and padding to 4, by length % 4
_SHAPES = [struct.Struct(f"<I{dims}q") for dims in range(MAX_DIMS + 1)]
# Each datatype's name as a string block (length, bytes, NUL, padding): the same every time.
_DATATYPE_BLOCKS = {
    dt.wire: _LENGTH.pack(len(dt.wire)) + dt.wire.encode() + _PADS[len(dt.wire) % 4]
    for dt in DATATYPES.values()
}


# Per tensor: name, dtype and shape as given.
Key = tuple[tuple[str, np.dtype[Any], tuple[int, ...]], ...]


# What a message's frame holds for each tensor, in order: the bytes that go before its data
# (the first tensor's hold the whole header), the dtype its data is sent as, and whether an
# array of the given dtype and shape is already what is sent (1-D uint8: no view needed).
Frame = tuple[tuple[bytes, np.dtype[Any], bool], ...]


class _Entry:
    """A cached frame, the header alone, the payload's size, and the first piece with the
    carrier message's key and length in front, by key."""

    __slots__ = ("frame", "framed", "header", "size")

    def __init__(self, frame: Frame, header: bytes, size: int) -> None:
        self.frame, self.header, self.size = frame, header, size
        self.framed: dict[bytes, bytes] = {}


# Key -> entry, least recently used first. Updates hold the lock (client threads encode too);
# a hit only moves its entry to the end, which is atomic.
_frames: OrderedDict[Key, _Entry] = OrderedDict()
_lock = threading.Lock()
_U8 = np.dtype(np.uint8)


def write_tensors(tensors: Mapping[str, npt.ArrayLike]) -> list[BytesLike]:
    """The pieces of the message holding ``tensors`` (name -> array), in order."""
    entry, arrays = _entry(tensors)
    if not arrays:
        return [entry.header]
    return _pieces(entry.frame, arrays, entry.frame[0][0])


def write_message(tensors: Mapping[str, npt.ArrayLike], tag: bytes) -> bytes:
    """The whole carrier message: ``tag``, the payload's length (payload.framing), then the
    message holding ``tensors``; its one write of the data."""
    entry, arrays = _entry(tensors)
    first = entry.framed.get(tag)
    if first is None:
        first = entry.framed[tag] = framing(tag, entry.size) + (
            entry.frame[0][0] if arrays else entry.header
        )
    if not arrays:
        return first
    return b"".join(_pieces(entry.frame, arrays, first))  # type: ignore[arg-type]  # ndarrays are buffers


def _entry(tensors: Mapping[str, npt.ArrayLike]) -> tuple[_Entry, list[npt.NDArray[Any]]]:
    arrays = []
    key = []
    exact = True  # a str subclass may compare equal to a str and encode differently
    for name, value in tensors.items():
        array = value if type(value) is np.ndarray else np.asarray(value)
        arrays.append(array)
        key.append((name, array.dtype, array.shape))
        exact = exact and type(name) is str
    frozen: Key = tuple(key)
    entry = _frames.get(frozen) if exact else None
    if entry is None:
        entry = _frame(frozen)
        if exact:
            _remember(frozen, entry)
    else:
        try:  # noqa: SIM105 (contextlib.suppress costs more per hit)
            _frames.move_to_end(frozen)
        except KeyError:  # another thread evicted it just now
            pass
    return entry, arrays


def _pieces(frame: Frame, arrays: list[npt.NDArray[Any]], first: bytes) -> list[BytesLike]:
    """``first``, then each array's data and the bytes before the next."""
    pieces: list[BytesLike] = []
    for (head, dtype, as_is), array in zip(frame, arrays, strict=True):
        if (array.dtype is not dtype and array.dtype != dtype) or not array.flags.c_contiguous:
            array = np.ascontiguousarray(array, dtype=dtype)  # the one copy, only if needed
        # A view: bytes of any dtype, bfloat16 included.
        pieces += (head, array if as_is else array.reshape(-1).view(np.uint8))
    pieces[0] = first
    return pieces


def clear_cache() -> None:
    """Forget every frame (tests)."""
    with _lock:
        _frames.clear()


def _remember(key: Key, frame: _Entry) -> None:
    with _lock:
        _frames[key] = frame
        _frames.move_to_end(key)
        while len(_frames) > CACHE_ENTRIES:
            _frames.popitem(last=False)


def _frame(key: Key) -> _Entry:
    """Lay out the header and the gaps for tensors of these names, dtypes and shapes."""
    count = len(key)
    tables = _TENSORS + 4 + 4 * count
    pos = tables + _TABLE_BYTES * count  # names, datatypes and shapes follow the tables
    words: list[int] = [count]  # the tensors vector, then each table, as uint32 words
    words += (tables + _TABLE_BYTES * i - (_TENSORS + 4 + 4 * i) for i in range(count))
    blocks: list[bytes] = []
    sizes = []
    dtypes = []
    for index, (name, dtype, shape) in enumerate(key):
        name_block, datatype_block, shape_block, datatype = _prepare(name, dtype, shape)
        table = tables + _TABLE_BYTES * index
        name_at = pos
        datatype_at = name_at + len(name_block)
        shape_at = datatype_at + len(datatype_block)
        blocks += (name_block, datatype_block)
        if shape_at % 8 == 0:  # shape elements (int64) start on an 8-byte boundary
            blocks.append(_PADS[0])
            shape_at += 4
        blocks.append(shape_block)
        pos = shape_at + len(shape_block)
        words += (table - _TENSOR_VTABLE, name_at - table - 4, datatype_at - table - 8,
                  shape_at - table - 12, 0)  # fmt: skip
        sizes.append(math.prod(shape) * datatype.itemsize)
        dtypes.append(datatype.dtype)
    heads, size = _with_data(words, blocks, sizes, pos)
    as_is = [dtype == _U8 and len(shape) == 1 for _, dtype, shape in key]
    frame = tuple(zip(heads, dtypes, as_is, strict=True)) if key else ()
    return _Entry(frame, heads[0], size)


def _with_data(
    words: list[int], blocks: list[bytes], sizes: list[int], end: int
) -> tuple[list[bytes], int]:
    """Place each data vector (of ``sizes`` bytes) on its boundary after the header; the pieces
    before each one (the first with the header), or the header alone when there is none, and
    the message's size."""
    gaps = []
    for index, nbytes in enumerate(sizes):
        start = -(-(end + 4) // DATA_ALIGNMENT) * DATA_ALIGNMENT
        field = _TENSORS + 4 + 4 * len(sizes) + _TABLE_BYTES * index + 16
        words[1 + len(sizes) + 5 * index + 4] = start - 4 - field
        gaps.append(bytes(start - 4 - end) + _LENGTH.pack(nbytes))
        end = start + nbytes
    if end > MAX_BUFFER:
        raise UsageError(f"the tensors need {end} bytes; a FlatBuffer holds at most {MAX_BUFFER}")
    header = b"".join([_PREAMBLE, struct.pack(f"<{len(words)}I", *words), *blocks])
    return ([header + gaps[0], *gaps[1:]] if gaps else [header]), end


def _prepare(
    name: str, dtype: np.dtype[Any], shape: tuple[int, ...]
) -> tuple[bytes, bytes, bytes, Datatype]:
    """A tensor's name, datatype and shape blocks, and the datatype it is sent as."""
    datatype = from_numpy(dtype)
    if datatype is None or datatype.wire == BYTES:
        raise UsageError(
            f"tensor {name!r} has dtype {dtype}; the FlatBuffers tensor message carries "
            "fixed-size datatypes (bool, ints, floats, bfloat16), not strings or objects"
        )
    if not name:
        raise UsageError("tensor names must not be empty")
    if len(shape) > MAX_DIMS:
        raise UsageError(f"tensor {name!r} has {len(shape)} dimensions; at most {MAX_DIMS}")
    encoded = name.encode()
    name_block = _LENGTH.pack(len(encoded)) + encoded + _PADS[len(encoded) % 4]
    shape_block = _SHAPES[len(shape)].pack(len(shape), *shape)
    return name_block, _DATATYPE_BLOCKS[datatype.wire], shape_block, datatype
