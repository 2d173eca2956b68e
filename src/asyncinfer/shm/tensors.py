"""Tensor messages (asyncinfer.Tensor) to numpy and back, inline or through SysV shared memory.

One RPC serves remote and co-located clients: a ``Tensor`` carries either its bytes (``raw``)
or a ``ShmRef`` into the client's segment. :func:`read_tensor` gives a numpy view either way,
without a copy: over the received bytes (read-only) or over the leased shared memory. A reply
is :func:`inline_tensor` (the bytes) or, when the client supplied an output reference,
:func:`write_tensor` copies the result into its shared memory once and replies with the
reference only.

Large inline tensors are slow through Python protobuf (building and serializing a 16 MiB
message costs tens of milliseconds in copies); :func:`framed_tensor_message` writes the same
bytes by hand with one copy, for ``execute`` to return as an already-serialized reply.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._wire import length_delimited, varint
from ..datatypes import BYTES, datatype_of
from ..datatypes import DATATYPES as ALL_DATATYPES
from ..errors import InvalidArgument
from ..pb.tensor_pb2 import ShmRef, Tensor
from .attach import SysvAttachments
from .sysv import ShmDescriptor

__all__ = [
    "DATATYPES",
    "descriptor_of",
    "dtype_of",
    "framed_tensor_message",
    "inline_tensor",
    "read_tensor",
    "shm_ref",
    "shm_tensor",
    "write_tensor",
]

#: The fixed-size Triton datatypes (BYTES has no fixed element size, so no SysV tensor message
#: carries it) and their little-endian numpy dtypes, from the package's one datatype table.
DATATYPES: dict[str, np.dtype[Any]] = {
    name: datatype.dtype for name, datatype in ALL_DATATYPES.items() if name != BYTES
}


def dtype_of(datatype: str, what: str = "tensor") -> np.dtype[Any]:
    try:
        return DATATYPES[datatype]
    except KeyError:
        raise InvalidArgument(
            f"{what}: datatype {datatype!r} is not supported here; expected one of "
            f"{', '.join(DATATYPES)}"
        ) from None


def descriptor_of(ref: ShmRef) -> ShmDescriptor:
    return ShmDescriptor(ref.segment_id, ref.key, ref.offset, ref.byte_size, ref.token)


def shm_ref(descriptor: ShmDescriptor) -> ShmRef:
    return ShmRef(
        segment_id=descriptor.segment_id,
        key=descriptor.key,
        offset=descriptor.offset,
        byte_size=descriptor.size,
        token=descriptor.token,
    )


def inline_tensor(array: npt.ArrayLike) -> Tensor:
    data = np.ascontiguousarray(array)
    return Tensor(
        datatype=datatype_of(data.dtype, fixed_size=True), shape=data.shape, raw=data.tobytes()
    )


def shm_tensor(descriptor: ShmDescriptor, dtype: npt.DTypeLike, shape: Sequence[int]) -> Tensor:
    return Tensor(
        datatype=datatype_of(dtype, fixed_size=True), shape=shape, shm=shm_ref(descriptor)
    )


def _checked_shape(message: Tensor, what: str) -> tuple[int, ...]:
    shape = tuple(message.shape)
    if any(dim < 0 for dim in shape):
        raise InvalidArgument(f"{what}: shape {list(shape)} has a negative dimension")
    return shape


@contextlib.contextmanager
def read_tensor(
    message: Tensor, attachments: SysvAttachments | None, what: str = "tensor"
) -> Iterator[npt.NDArray[Any]]:
    """A numpy view of ``message``'s data, valid inside the ``with`` block only."""
    dtype = dtype_of(message.datatype, what)
    shape = _checked_shape(message, what)
    kind = message.WhichOneof("contents")
    if kind == "shm":
        if attachments is None:
            raise InvalidArgument(f"{what}: this service does not accept shared memory")
        with attachments.lease(descriptor_of(message.shm)) as lease:
            yield lease.array(dtype, shape)
        return
    raw = message.raw if kind == "raw" else b""
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise InvalidArgument(
            f"{what}: {len(raw)} raw bytes do not match {message.datatype}{list(shape)}, "
            f"which needs {expected}"
        )
    yield np.frombuffer(raw, dtype).reshape(shape)


def write_tensor(
    array: npt.NDArray[Any], output: ShmRef | None, attachments: SysvAttachments | None
) -> Tensor:
    """The reply tensor: inline bytes, or ``array`` copied into ``output``'s shared memory."""
    if output is None:
        return inline_tensor(array)
    if attachments is None:
        raise InvalidArgument("output: this service does not accept shared memory")
    with attachments.lease(descriptor_of(output)) as lease:
        lease.write(array)
    return Tensor(datatype=datatype_of(array.dtype, fixed_size=True), shape=array.shape, shm=output)


def framed_tensor_message(field_number: int, array: npt.NDArray[Any]) -> bytes:
    """The serialized bytes of a message whose field ``field_number`` is ``array`` as an inline
    Tensor, exactly as protobuf would write them, built with one copy of the data."""
    data = np.ascontiguousarray(array)
    datatype = datatype_of(data.dtype, fixed_size=True).encode()
    shape = b"".join(varint(dim) for dim in data.shape)
    head = length_delimited(1, len(datatype)) + datatype
    if shape:
        head += length_delimited(2, len(shape)) + shape
    payload = data.reshape(-1).view(np.uint8).data
    head += length_delimited(3, payload.nbytes)
    outer = length_delimited(field_number, len(head) + payload.nbytes)
    return b"".join((outer, head, payload))
