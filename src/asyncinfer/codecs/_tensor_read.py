"""Reads a FlatBuffers tensor message after checking every offset it follows: numpy views over
the received buffer, or InvalidArgument naming the field that is wrong.

The Python FlatBuffers runtime has no verifier and flatc's generated readers trust the buffer,
so this module does what FlatBuffers' C++ Verifier does, for this schema: every table's vtable,
every field, every offset and every vector must lie inside the buffer and be aligned, offsets
must not be zero, strings must end in NUL. Then the tensor checks: a known fixed-size datatype,
dimensions >= 0, and exactly product(shape) * element size bytes of data. One pass does both,
and the data is never copied: each array is a read-only view of the buffer.

This runs once per received message on the event loop, so it is written for speed: the name of
the field being checked (``Where``) is a small tuple, turned into text only for an error.
"""

from __future__ import annotations

import math
import struct
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

_KNOWN = ", ".join(name for name in DATATYPES if name != BYTES)
_BY_WIRE = {dt.wire.encode(): dt for dt in DATATYPES.values() if dt.wire != BYTES}
_SHAPES = [struct.Struct(f"<{dims}q") for dims in range(MAX_DIMS + 1)]
_SLOTS = [struct.Struct(f"<{slots}H") for slots in range(len(TENSOR_FIELDS) + 1)]
_U32 = U32.unpack_from
_ROOT: Where = (None, None, "root")
_MESSAGE: Where = (None, None, "TensorMessage")
_TENSORS: Where = (None, None, "tensors")


def read_tensors(buf: memoryview) -> Arrays:
    """The tensors of the message in ``buf``, by name, as views over ``buf``."""
    size = len(buf)
    if size < 8:
        raise _bad((None, None, "buffer"), f"has {size} bytes; a TensorMessage needs at least 8 "
                   "(root offset, file identifier)")  # fmt: skip
    if size > MAX_BUFFER:
        raise _bad((None, None, "buffer"), f"has {size} bytes; at most {MAX_BUFFER} fit")
    if buf[4:8] != IDENTIFIER:
        raise _bad((None, None, "buffer"), f"has file identifier {bytes(buf[4:8])!r}; a "
                   f"TensorMessage has {IDENTIFIER!r}")  # fmt: skip
    root = _follow(buf, 0, size, _ROOT)
    (tensors,) = _table(buf, root, size, _MESSAGE, 1)
    if not tensors:
        return {}
    start, count = _vector_at(buf, tensors, size, 4, _TENSORS)
    arrays: Arrays = {}
    for index in range(count):
        name, array = _tensor(buf, _follow(buf, start + 4 * index, size, (index, None, None)),
                              size, index)  # fmt: skip
        if name in arrays:
            raise _bad((index, None, "name"), f"{name!r} appears twice; names must be unique")
        arrays[name] = array
    return arrays


def _tensor(buf: memoryview, pos: int, size: int, index: int) -> tuple[str, npt.NDArray[Any]]:
    fields = _table(buf, pos, size, (index, None, None), 4)
    if not all(fields):
        missing = TENSOR_FIELDS[fields.index(0)]
        raise _bad((index, None, missing), "is missing; every tensor needs it")
    start, length = _string(buf, fields[0], size, (index, None, "name"))
    try:
        name = str(buf[start : start + length], "utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(
            (index, None, "name"), f"is not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    if not name:
        raise _bad((index, None, "name"), "is empty")
    start, length = _string(buf, fields[1], size, (index, name, "datatype"))
    datatype = _datatype(bytes(buf[start : start + length]), (index, name, "datatype"))
    shape = _shape(buf, fields[2], size, (index, name, "shape"))
    where: Where = (index, name, "data")
    start, length = _vector_at(buf, fields[3], size, 1, where)
    elements = math.prod(shape)
    if length != elements * datatype.itemsize:
        raise _bad(where, f"has {length} bytes; shape {list(shape)} of {datatype.wire} needs "
                   f"{elements * datatype.itemsize}")  # fmt: skip
    array = np.frombuffer(buf, dtype=datatype.dtype, count=elements, offset=start)
    return name, array.reshape(shape)


def _datatype(name: bytes, where: Where) -> Datatype:
    datatype = _BY_WIRE.get(name)
    if datatype is None:
        text = name.decode(errors="replace")
        what = "BYTES is not supported here" if text == BYTES else f"{text!r} is not a datatype"
        raise _bad(where, f"{what}; expected one of {_KNOWN}")
    return datatype


def _shape(buf: memoryview, field: int, size: int, where: Where) -> tuple[int, ...]:
    start, dims = _vector_at(buf, field, size, 8, where)
    if dims > MAX_DIMS:
        raise _bad(where, f"has {dims} dimensions; at most {MAX_DIMS} are supported")
    shape: tuple[int, ...] = _SHAPES[dims].unpack_from(buf, start)
    if dims and min(shape) < 0:
        raise _bad(where, f"is {list(shape)}; dimensions must be >= 0")
    return shape


def _table(buf: memoryview, pos: int, size: int, where: Where, slots: int) -> list[int]:
    """The positions of the table's first ``slots`` 4-byte fields (0: absent), all checked."""
    if pos % 4 or pos + 4 > size:
        raise _bad(where, f"table at byte {pos} is misaligned or past the end of {size} bytes")
    vtable = pos - I32.unpack_from(buf, pos)[0]
    if vtable % 2 or vtable < 0 or vtable + 4 > size:
        raise _bad(where, f"vtable at byte {vtable} is misaligned or outside the {size} bytes")
    vsize = U16.unpack_from(buf, vtable)[0]
    if vsize % 2 or vsize < 4 or vtable + vsize > size:
        raise _bad(where, f"vtable of {vsize} bytes at byte {vtable} is malformed or cut off")
    present = min(slots, (vsize - 4) // 2)
    fields = [0] * slots
    for slot, offset in enumerate(_SLOTS[present].unpack_from(buf, vtable + 4)):
        if offset:
            field = fields[slot] = pos + offset
            if field % 4 or field + 4 > size:
                raise _bad(where, f"field {slot} at byte {field} is misaligned or past the end")
    return fields


def _follow(buf: memoryview, field: int, size: int, where: Where) -> int:
    """Where the 4-byte offset at ``field`` points, checked to lie inside the buffer."""
    offset: int = _U32(buf, field)[0]
    target = field + offset
    if offset == 0 or offset >= 2**31 or target >= size:
        raise _bad(where, f"offset {offset} at byte {field} points outside the {size} bytes")
    return target


def _vector_at(buf: memoryview, field: int, size: int, item: int, where: Where) -> tuple[int, int]:
    """(start, count) of the vector of ``item``-byte elements the offset at ``field`` points
    to, both checked to lie inside the buffer."""
    offset: int = _U32(buf, field)[0]
    pos = field + offset
    if offset == 0 or offset >= 2**31 or pos >= size:
        raise _bad(where, f"offset {offset} at byte {field} points outside the {size} bytes")
    start = pos + 4
    if pos % 4 or start > size or start % item:
        raise _bad(where, f"vector at byte {pos} is misaligned or past the end of {size} bytes")
    count: int = _U32(buf, pos)[0]
    if count * item > size - start:
        raise _bad(where, f"vector of {count} x {item} bytes at byte {start} runs past the end "
                   f"({size})")  # fmt: skip
    return start, count


def _string(buf: memoryview, field: int, size: int, where: Where) -> tuple[int, int]:
    """(start, length) of the NUL-terminated string the offset at ``field`` points to."""
    start, length = _vector_at(buf, field, size, 1, where)
    if start + length >= size or buf[start + length] != 0:
        raise _bad(where, "string is not NUL-terminated inside the buffer")
    return start, length


def _bad(where: Where, what: str) -> InvalidArgument:
    index, name, field = where
    if index is None:
        return InvalidArgument(f"{field} {what}")
    tensor = f"tensors[{index}]" if name is None else f"tensors[{index}] ({name!r})"
    return InvalidArgument(f"{tensor}.{field} {what}" if field else f"{tensor} {what}")
