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

from ..datatypes import BYTES, DATATYPES, from_numpy
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
_PADS = [bytes(4 - k % 4) for k in range(4)]  # a string's NUL and padding to 4, by length % 4
_SHAPES = [struct.Struct(f"<I{dims}q") for dims in range(MAX_DIMS + 1)]
# Each datatype's name as a string block (length, bytes, NUL, padding): the same every time.
_DATATYPE_BLOCKS = {
    dt.wire: _LENGTH.pack(len(dt.wire)) + dt.wire.encode() + _PADS[len(dt.wire) % 4]
    for dt in DATATYPES.values()
}


def write_tensors(tensors: Mapping[str, npt.ArrayLike]) -> list[BytesLike]:
    """The pieces of the message holding ``tensors`` (name -> array), in order."""
    count = len(tensors)
    tables = _TENSORS + 4 + 4 * count
    pos = tables + _TABLE_BYTES * count  # names, datatypes and shapes follow the tables
    words: list[int] = [count]  # the tensors vector, then each table, as uint32 words
    words += (tables + _TABLE_BYTES * i - (_TENSORS + 4 + 4 * i) for i in range(count))
    blocks: list[bytes] = []
    arrays = []
    for index, (name, value) in enumerate(tensors.items()):
        name_block, datatype_block, shape_block, data = _prepare(name, value)
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
        arrays.append(data)
    return _with_data(words, blocks, arrays, pos)


def _with_data(
    words: list[int], blocks: list[bytes], arrays: list[npt.NDArray[Any]], end: int
) -> list[BytesLike]:
    """Place each data vector on its boundary after the header; the message's pieces."""
    gaps = []
    for index, data in enumerate(arrays):
        start = -(-(end + 4) // DATA_ALIGNMENT) * DATA_ALIGNMENT
        field = _TENSORS + 4 + 4 * len(arrays) + _TABLE_BYTES * index + 16
        words[1 + len(arrays) + 5 * index + 4] = start - 4 - field
        gaps.append(bytes(start - 4 - end) + _LENGTH.pack(data.nbytes))
        end = start + data.nbytes
    if end > MAX_BUFFER:
        raise UsageError(f"the tensors need {end} bytes; a FlatBuffer holds at most {MAX_BUFFER}")
    header = [_PREAMBLE, struct.pack(f"<{len(words)}I", *words), *blocks]
    if not arrays:
        return [b"".join(header)]
    pieces: list[BytesLike] = [b"".join([*header, gaps[0]]), arrays[0]]
    for gap, data in zip(gaps[1:], arrays[1:], strict=True):
        pieces += (gap, data)
    return pieces


def _prepare(name: str, value: npt.ArrayLike) -> tuple[bytes, bytes, bytes, Any]:
    """A tensor's name, datatype and shape blocks and its data as a uint8 view."""
    array = value if type(value) is np.ndarray else np.asarray(value)
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
    encoded = name.encode()
    name_block = _LENGTH.pack(len(encoded)) + encoded + _PADS[len(encoded) % 4]
    shape_block = _SHAPES[array.ndim].pack(array.ndim, *array.shape)
    data = array.reshape(-1).view(np.uint8)  # a view: bytes of any dtype, bfloat16 included
    return name_block, _DATATYPE_BLOCKS[datatype.wire], shape_block, data
