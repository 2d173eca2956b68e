"""Reads a FlatBuffers tensor message after checking every offset it follows: numpy views over
the received buffer, or InvalidArgument naming the field that is wrong.

The Python FlatBuffers runtime has no verifier and flatc's generated readers trust the buffer,
so this module does what FlatBuffers' C++ Verifier does, for this schema: every table's vtable,
every field, every offset and every vector must lie inside the buffer and be aligned, offsets
must not be zero, strings must end in NUL. Then the tensor checks: a known fixed-size datatype,
dimensions >= 0, and exactly product(shape) * element size bytes of data. One pass does both,
and the data is never copied: each array is a read-only view of the buffer.
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
_KNOWN = ", ".join(name for name in DATATYPES if name != BYTES)


def read_tensors(buf: memoryview) -> Arrays:
    """The tensors of the message in ``buf``, by name, as views over ``buf``."""
    size = len(buf)
    if size < 8:
        raise _bad(
            "buffer", f"has {size} bytes; a TensorMessage needs at least 8 (root offset, file id)"
        )
    if size > MAX_BUFFER:
        raise _bad("buffer", f"has {size} bytes; FlatBuffers buffers are at most {MAX_BUFFER}")
    if buf[4:8] != IDENTIFIER:
        raise _bad(
            "buffer", f"has file identifier {bytes(buf[4:8])!r}; a TensorMessage has {IDENTIFIER!r}"
        )
    root = _follow(buf, 0, size, "root offset")
    (tensors_field,) = _table(buf, root, size, "TensorMessage", 1)
    if not tensors_field:
        return {}
    start, count = _vector(buf, _follow(buf, tensors_field, size, "tensors"), size, 4, "tensors")
    arrays: Arrays = {}
    for index in range(count):
        where = f"tensors[{index}]"
        name, array = _tensor(buf, _follow(buf, start + 4 * index, size, where), size, where)
        if name in arrays:
            raise _bad(f"{where}.name", f"{name!r} appears twice; tensor names must be unique")
        arrays[name] = array
    return arrays


def _tensor(buf: memoryview, pos: int, size: int, where: str) -> tuple[str, npt.NDArray[Any]]:
    fields = _table(buf, pos, size, where, 4)
    for slot, field in enumerate(fields):
        if not field:
            raise _bad(f"{where}.{TENSOR_FIELDS[slot]}", "is missing; every tensor needs it")
    name = _string(buf, fields[0], size, f"{where}.name")
    if not name:
        raise _bad(f"{where}.name", "is empty")
    where = f"{where} ({name!r})"
    datatype = _datatype(_string(buf, fields[1], size, f"{where}.datatype"), where)
    shape = _shape(buf, fields[2], size, f"{where}.shape")
    data = f"{where}.data"
    start, length = _vector(buf, _follow(buf, fields[3], size, data), size, 1, data)
    elements = math.prod(shape)
    if length != elements * datatype.itemsize:
        raise _bad(
            data,
            f"has {length} bytes; shape {list(shape)} of {datatype.wire} needs "
            f"{elements * datatype.itemsize}",
        )
    array = np.frombuffer(buf, dtype=datatype.dtype, count=elements, offset=start)
    return name, array.reshape(shape)


def _datatype(name: str, where: str) -> Datatype:
    datatype = DATATYPES.get(name)
    if datatype is None or datatype.wire == BYTES:
        what = "BYTES is not supported here" if name == BYTES else f"{name!r} is not a datatype"
        raise _bad(f"{where}.datatype", f"{what}; expected one of {_KNOWN}")
    return datatype


def _shape(buf: memoryview, field: int, size: int, where: str) -> tuple[int, ...]:
    start, dims = _vector(buf, _follow(buf, field, size, where), size, 8, where)
    if dims > MAX_DIMS:
        raise _bad(where, f"has {dims} dimensions; at most {MAX_DIMS} are supported")
    shape: tuple[int, ...] = struct.unpack_from(f"<{dims}q", buf, start)
    if any(dim < 0 for dim in shape):
        raise _bad(where, f"is {list(shape)}; dimensions must be >= 0")
    return shape


def _table(buf: memoryview, pos: int, size: int, where: str, slots: int) -> tuple[int, ...]:
    """The positions of the table's first ``slots`` 4-byte fields (0: absent), all checked."""
    if pos % 4 or pos + 4 > size:
        raise _bad(where, f"table at byte {pos} is misaligned or past the end of {size} bytes")
    vtable = pos - I32.unpack_from(buf, pos)[0]
    if vtable % 2 or vtable < 0 or vtable + 4 > size:
        raise _bad(where, f"vtable at byte {vtable} is misaligned or outside the {size} bytes")
    vsize = U16.unpack_from(buf, vtable)[0]
    if vsize % 2 or vsize < 4 or vtable + vsize > size:
        raise _bad(where, f"vtable of {vsize} bytes at byte {vtable} is malformed or cut off")
    fields = []
    for slot in range(slots):
        entry = 4 + 2 * slot
        offset = U16.unpack_from(buf, vtable + entry)[0] if entry < vsize else 0
        field = pos + offset if offset else 0
        if field and (field % 4 or field + 4 > size):
            raise _bad(where, f"field {slot} at byte {field} is misaligned or past the end")
        fields.append(field)
    return tuple(fields)


def _follow(buf: memoryview, field: int, size: int, where: str) -> int:
    """Where the 4-byte offset at ``field`` points, checked to lie inside the buffer."""
    offset: int = U32.unpack_from(buf, field)[0]
    target = field + offset
    if offset == 0 or offset >= 2**31 or target >= size:
        raise _bad(where, f"offset {offset} at byte {field} points outside the {size} bytes")
    return target


def _vector(buf: memoryview, pos: int, size: int, item: int, where: str) -> tuple[int, int]:
    """(start, count) of the vector at ``pos`` with ``item``-byte elements, checked."""
    start = pos + 4
    if pos % 4 or start > size or start % item:
        raise _bad(where, f"vector at byte {pos} is misaligned or past the end of {size} bytes")
    count = U32.unpack_from(buf, pos)[0]
    if count * item > size - start:
        raise _bad(
            where, f"vector of {count} x {item} bytes at byte {start} runs past the end ({size})"
        )
    return start, count


def _string(buf: memoryview, field: int, size: int, where: str) -> str:
    start, length = _vector(buf, _follow(buf, field, size, where), size, 1, where)
    if start + length >= size or buf[start + length] != 0:
        raise _bad(where, "string is not NUL-terminated inside the buffer")
    try:
        return str(buf[start : start + length], "utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(where, f"is not UTF-8 ({exc.reason} at byte {exc.start})") from None


def _bad(where: str, what: str) -> InvalidArgument:
    return InvalidArgument(f"{where} {what}")
