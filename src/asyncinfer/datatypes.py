"""Triton datatypes: one table of wire names, config names, numpy dtypes and element sizes, and
the rules every tensor follows: shapes against patterns, and the BYTES element layout.

The wire name (``INT32``, ``BYTES``) is what requests carry; the config name (``TYPE_INT32``,
``TYPE_STRING``) is what config.pbtxt carries. BYTES tensors are numpy object arrays of ``bytes``;
BF16 uses ``ml_dtypes.bfloat16`` (numpy has no bfloat16 of its own). On the wire and in shared
memory a BYTES tensor is its elements in row-major order, each a 4-byte little-endian length and
then the bytes.

The only datatype table of the package: the inference service, the engines' bindings, the
clients and the SysV tensor messages all look datatypes up here.
"""

from __future__ import annotations

import dataclasses
import struct
import sys
from typing import Any, NamedTuple

import ml_dtypes
import numpy as np
import numpy.typing as npt

from .errors import InvalidArgument
from .pb.inference import model_config_pb2

__all__ = [
    "BYTES",
    "DATATYPES",
    "BytesSplit",
    "Datatype",
    "as_array",
    "datatype_of",
    "deserialize_bytes",
    "from_config",
    "from_numpy",
    "from_wire",
    "object_array",
    "serialize_bytes",
    "shape_fits",
    "split_bytes",
    "tensor_bytes",
]

BYTES = "BYTES"


@dataclasses.dataclass(frozen=True, slots=True)
class Datatype:
    """One Triton datatype. ``itemsize`` is 0 for BYTES (variable-size elements)."""

    wire: str
    config: str
    dtype: np.dtype[Any]

    @property
    def itemsize(self) -> int:
        return 0 if self.wire == BYTES else self.dtype.itemsize

    @property
    def config_enum(self) -> int:
        return model_config_pb2.DataType.Value(self.config)


def _table() -> dict[str, Datatype]:
    rows: list[tuple[str, str, Any]] = [
        ("BOOL", "TYPE_BOOL", np.bool_),
        ("UINT8", "TYPE_UINT8", np.uint8),
        ("UINT16", "TYPE_UINT16", np.uint16),
        ("UINT32", "TYPE_UINT32", np.uint32),
        ("UINT64", "TYPE_UINT64", np.uint64),
        ("INT8", "TYPE_INT8", np.int8),
        ("INT16", "TYPE_INT16", np.int16),
        ("INT32", "TYPE_INT32", np.int32),
        ("INT64", "TYPE_INT64", np.int64),
        ("FP16", "TYPE_FP16", np.float16),
        ("FP32", "TYPE_FP32", np.float32),
        ("FP64", "TYPE_FP64", np.float64),
        ("BF16", "TYPE_BF16", ml_dtypes.bfloat16),
        (BYTES, "TYPE_STRING", np.object_),
    ]
    # Little-endian on the wire whatever the host is; "<" is a no-op for 1-byte types.
    return {
        wire: Datatype(
            wire,
            config,
            np.dtype(dtype).newbyteorder("<") if wire != BYTES else np.dtype(np.object_),
        )
        for wire, config, dtype in rows
    }


#: Every datatype by wire name, in config-enum order.
DATATYPES: dict[str, Datatype] = _table()
_BY_CONFIG = {dt.config: dt for dt in DATATYPES.values()}
_BY_CONFIG_ENUM = {dt.config_enum: dt for dt in DATATYPES.values()}
_BY_NUMPY = {dt.dtype: dt for dt in DATATYPES.values() if dt.wire != BYTES}


def from_wire(name: str) -> Datatype | None:
    """The datatype a request names (``INT32``), or None when there is no such datatype."""
    return DATATYPES.get(name)


def from_config(value: int | str) -> Datatype | None:
    """The datatype of a config ``data_type`` (enum value or ``TYPE_INT32``), or None."""
    if isinstance(value, str):
        return _BY_CONFIG.get(value)
    return _BY_CONFIG_ENUM.get(value)


def from_numpy(dtype: np.dtype[Any]) -> Datatype | None:
    """The datatype of a numpy dtype; object and bytes/str arrays are BYTES."""
    found = _BY_NUMPY.get(dtype)  # the usual case: a native little-endian dtype
    if found is not None:
        return found
    if dtype.kind in "OSU":
        return DATATYPES[BYTES]
    return _BY_NUMPY.get(dtype.newbyteorder("<"))


def as_array(value: npt.ArrayLike) -> npt.NDArray[Any]:
    """``value`` as a numpy array for a request: bytes and str values (numpy's fixed-width
    ``S``/``U`` arrays, lists of them) become the object arrays BYTES tensors are; anything
    else goes through ``np.asarray`` unchanged (no dtype is converted)."""
    array = np.asarray(value)
    if array.dtype.kind in "SU":
        return array.astype(np.object_)
    return array


def datatype_of(dtype: npt.DTypeLike, *, fixed_size: bool = False) -> str:
    """The Triton datatype name of a numpy dtype ("FP32" for float32).

    InvalidArgument when it has none; with ``fixed_size``, also for BYTES (object, bytes and
    str arrays), whose elements have no fixed size.
    """
    dt = np.dtype(dtype)
    found = from_numpy(dt)
    if found is None or (fixed_size and found.wire == BYTES):
        kind = "fixed-size " if fixed_size else ""
        raise InvalidArgument(f"numpy dtype {dt} has no {kind}Triton datatype")
    return found.wire


def shape_fits(
    shape: tuple[int, ...], pattern: tuple[int, ...], *, wildcards_in_shape: bool = False
) -> bool:
    """Whether ``shape`` fits ``pattern``, where -1 in ``pattern`` matches any extent.

    With ``wildcards_in_shape`` a -1 in ``shape`` matches any extent too: two patterns that
    some shape could satisfy (a config's dims against a model file's). The one place this
    rule is written; request, output, binding and load-time checks all call it.
    """
    if shape == pattern:
        return True
    if len(shape) != len(pattern):
        return False
    if wildcards_in_shape:
        return all(want in (-1, got) or got == -1 for want, got in zip(pattern, shape, strict=True))
    if -1 not in pattern[1:]:  # the usual case, on the request path: only the batch varies
        return shape[1:] == pattern[1:] and pattern[0] in (-1, shape[0])
    return all(want in (-1, got) for want, got in zip(pattern, shape, strict=True))


_LENGTH = struct.Struct("<I")
_LITTLE = ("<", "|") if sys.byteorder == "big" else ("<", "|", "=")


def tensor_bytes(array: npt.NDArray[Any]) -> memoryview:
    """A fixed-size tensor's data as its wire carries it: little-endian, row-major; a view of
    ``array`` when it already is, else one copy."""
    if array.flags.c_contiguous and array.dtype.byteorder in _LITTLE:
        try:
            # The array's own buffer as bytes: several times cheaper than a uint8 view.
            return array.data.cast("B")
        except (TypeError, ValueError, NotImplementedError):
            # No buffer format for the dtype, or a 0-d array: a uint8 view of it instead.
            return memoryview(array.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
    contiguous = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return memoryview(contiguous.reshape(-1).view(np.uint8))  # type: ignore[arg-type]


def serialize_bytes(array: npt.NDArray[Any]) -> bytes:
    """BYTES elements, row-major, each as a 4-byte little-endian length and the bytes."""
    parts: list[bytes] = []
    for item in array.reshape(-1):
        data = item if isinstance(item, bytes) else str(item).encode()
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


class BytesSplit(NamedTuple):
    """What :func:`split_bytes` found: the elements, whether more follow, and a layout problem."""

    #: The elements read, at most ``limit`` of them.
    items: list[bytes]
    #: Another element starts after the ``limit`` read (the buffer holds too many).
    more: bool
    #: Why the buffer is not a valid layout ("" when it is): a truncated prefix or element.
    problem: str


def split_bytes(buffer: bytes | memoryview, limit: int) -> BytesSplit:
    """The length-prefixed BYTES elements of ``buffer``, at most ``limit`` of them.

    The walk is bounded by the buffer, not by ``limit``: nothing of ``limit``'s size is
    allocated, so a request that declares a huge shape over a few bytes costs a few bytes.
    It stops at the first element past ``limit`` (``more``) or at the first truncated one
    (``problem``, in Triton's words).
    """
    data = buffer if isinstance(buffer, bytes) else bytes(buffer)  # slices of bytes are bytes
    size = len(data)
    items: list[bytes] = []
    append = items.append
    unpack = _LENGTH.unpack_from
    offset = count = 0
    while offset < size:
        if count == limit:
            return BytesSplit(items, True, "")
        if size - offset < 4:
            problem = f"expecting 4 bytes but only {size - offset} bytes available"
            return BytesSplit(items, False, problem)
        (length,) = unpack(data, offset)
        start = offset + 4
        offset = start + length
        if offset > size:
            problem = f"expecting string of length {length} but only {size - start} bytes available"
            return BytesSplit(items, False, problem)
        append(data[start:offset])
        count += 1
    return BytesSplit(items, False, "")


def object_array(items: list[Any]) -> npt.NDArray[Any]:
    """A 1-D object array of ``items`` (numpy never splits bytes or str elements)."""
    array = np.empty(len(items), dtype=np.object_)
    array[:] = items
    return array


def deserialize_bytes(buffer: bytes | memoryview, count: int, *, what: str) -> npt.NDArray[Any]:
    """``count`` length-prefixed elements from ``buffer``, as an object array of bytes.

    InvalidArgument naming ``what`` when the buffer holds fewer or more than ``count``.
    """
    found = split_bytes(buffer, count)
    if found.problem:
        index = len(found.items)
        raise InvalidArgument(f"{what}: BYTES element {index} is truncated, {found.problem}")
    if found.more or len(found.items) != count:
        got = f"more than {count}" if found.more else str(len(found.items))
        raise InvalidArgument(f"{what}: expected {count} BYTES elements, the buffer holds {got}")
    return object_array(found.items)
