"""The facts of schemas/asyncinfer/fb/tensor.fbs that the tensor message's reader and writer
share: file identifier, field slots, alignment and limits.

flatc assigns field slots in declaration order (``name`` 0, ``datatype`` 1, ``shape`` 2,
``data`` 3; ``tensors`` 0 of TensorMessage); tests/unit/codecs cross-check these against the
code flatc generates from the schema and against flatc's own reading of our buffers.
"""

from __future__ import annotations

import struct

IDENTIFIER = b"AITM"
#: Data vectors start on this boundary of the buffer (the schema's force_align).
DATA_ALIGNMENT = 64
#: Fields of a Tensor table, in slot order.
TENSOR_FIELDS = ("name", "datatype", "shape", "data")
#: numpy's limit on dimensions (NPY_MAXDIMS of numpy 1.x; 2.x allows 64).
MAX_DIMS = 32
#: FlatBuffers' own limit: offsets are 32-bit, signed where they point back.
MAX_BUFFER = 2**31 - 1

U16 = struct.Struct("<H")
U32 = struct.Struct("<I")
I32 = struct.Struct("<i")
