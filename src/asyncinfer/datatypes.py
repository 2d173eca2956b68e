"""Triton datatypes: wire names, config enum names, numpy dtypes and element sizes, in one table.

The wire name (``INT32``, ``BYTES``) is what requests carry; the config name (``TYPE_INT32``,
``TYPE_STRING``) is what config.pbtxt carries. BYTES tensors are numpy object arrays of ``bytes``;
BF16 uses ``ml_dtypes.bfloat16`` (numpy has no bfloat16 of its own).

The only datatype table of the package: the inference service, the engines' bindings and the
SysV tensor messages all look datatypes up here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_dtypes
import numpy as np

from .pb.inference import model_config_pb2

__all__ = [
    "BYTES",
    "DATATYPES",
    "Datatype",
    "from_config",
    "from_numpy",
    "from_wire",
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
