"""Writes a FlatBuffers tensor message front to back, each tensor's data written once.

flatbuffers.Builder builds back to front into a growing bytearray: the data is copied into it,
again when it grows, and again by ``Output()``. This writer lays the message out from the
front instead (FlatBuffers only asks that offsets point forward and that scalars are aligned):
one small header holds the root, the vtables, the tables, names, datatypes and shapes; the
data vectors follow, each on a 64-byte boundary. The result is a list of pieces, the arrays'
own memory among them, that the payload codec joins into the message: the only write of the
data.

Layout, offsets from the start of the buffer::

    0   root offset -> ROOT          4   file identifier "AITM"
    8   vtable of TensorMessage      16  vtable of Tensor (shared by every tensor)
    28  ROOT: soffset, offset -> tensors vector
    36  tensors vector: count, offsets -> tables
        Tensor tables (soffset + 4 offsets each), then names, datatypes and shapes
        data vectors: length, then the bytes starting on a 64-byte boundary
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ..datatypes import BYTES, from_numpy
from ..errors import UsageError
from ._tensor_layout import DATA_ALIGNMENT, IDENTIFIER, MAX_BUFFER, MAX_DIMS
from .base import BytesLike

__all__ = ["write_tensors"]

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
_TABLE = struct.Struct("<iIIII")


def write_tensors(tensors: Mapping[str, npt.ArrayLike]) -> list[BytesLike]:
    """The pieces of the message holding ``tensors`` (name -> array), in order."""
    items = [_prepare(name, value) for name, value in tensors.items()]
    tables = _TENSORS + 4 + 4 * len(items)
    header = bytearray(_PREAMBLE)
    header += _LENGTH.pack(len(items))
    header += bytes(4 * len(items) + _TABLE_BYTES * len(items))
    data_fields: list[int] = []
    for index, (name, datatype, shape, _data) in enumerate(items):
        table = tables + _TABLE_BYTES * index
        struct.pack_into("<I", header, _TENSORS + 4 + 4 * index, table - (_TENSORS + 4 + 4 * index))
        fields = (_string(header, name), _string(header, datatype), _shape(header, shape))
        _TABLE.pack_into(
            header, table, table - _TENSOR_VTABLE,
            *(target - (table + 4 + 4 * slot) for slot, target in enumerate(fields)), 0,
        )  # fmt: skip
        data_fields.append(table + 16)
    return _with_data(header, data_fields, [item[3] for item in items])


def _with_data(
    header: bytearray, fields: list[int], arrays: list[npt.NDArray[Any]]
) -> list[BytesLike]:
    """Place each data vector on its boundary after the header; patch the offsets to them."""
    pieces: list[BytesLike] = [header]
    end = len(header)
    gaps = []
    for field, data in zip(fields, arrays, strict=True):
        start = -(-(end + 4) // DATA_ALIGNMENT) * DATA_ALIGNMENT
        struct.pack_into("<I", header, field, start - 4 - field)
        gaps.append(bytes(start - 4 - end) + _LENGTH.pack(data.nbytes))
        end = start + data.nbytes
    if end > MAX_BUFFER:
        raise UsageError(f"the tensors need {end} bytes; a FlatBuffer holds at most {MAX_BUFFER}")
    if gaps:
        header += gaps[0]  # the first gap is written with the header, not as a piece of its own
        pieces.append(arrays[0])
        for gap, data in zip(gaps[1:], arrays[1:], strict=True):
            pieces += (gap, data)
    return pieces


def _prepare(name: str, value: npt.ArrayLike) -> tuple[bytes, bytes, tuple[int, ...], Any]:
    array = np.asarray(value)
    datatype = from_numpy(array.dtype)
    if datatype is None or datatype.wire == BYTES:
        raise UsageError(
            f"tensor {name!r} has dtype {array.dtype}; the FlatBuffers tensor message carries "
            "fixed-size datatypes (bool, ints, floats, bfloat16), not strings or objects"
        )
    if not name:
        raise UsageError("tensor names must not be empty")
    if array.ndim > MAX_DIMS:
        raise UsageError(f"tensor {name!r} has {array.ndim} dimensions; at most {MAX_DIMS}")
    if array.dtype != datatype.dtype or not array.flags.c_contiguous:
        array = np.ascontiguousarray(array, dtype=datatype.dtype)  # the one copy, only if needed
    data = array.reshape(-1).view(np.uint8)  # a view: bytes of any dtype, bfloat16 included
    return name.encode(), datatype.wire.encode(), array.shape, data


def _string(header: bytearray, text: bytes) -> int:
    """Append a string (length, bytes, NUL, padding to 4); its position."""
    pos = len(header)
    header += _LENGTH.pack(len(text)) + text + bytes(4 - len(text) % 4)
    return pos


def _shape(header: bytearray, shape: tuple[int, ...]) -> int:
    """Append a vector of int64 with its elements on an 8-byte boundary; its position."""
    if len(header) % 8 == 0:
        header += bytes(4)
    pos = len(header)
    header += _LENGTH.pack(len(shape)) + struct.pack(f"<{len(shape)}q", *shape)
    return pos
