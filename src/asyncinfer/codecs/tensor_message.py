"""The FlatBuffers codec: the tensor message of schemas/asyncinfer/fb/tensor.fbs.

A Context with ``codec = codecs.FLATBUFFERS`` receives a dict of numpy arrays (name -> array)
and returns one. Received arrays are read-only views over the received message, checked
before they are read (every offset, vector length, datatype and shape); an array returned is
written once into the reply. Non-Python clients read and build the message with the code
flatc generates from ``tensor.fbs`` (shipped in asyncinfer/fb/).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf.descriptor import Descriptor

from ..datatypes import BYTES, DATATYPES
from ..errors import UsageError
from ._tensor_read import read_tensors
from ._tensor_write import write_message, write_tensors
from .base import BoundCodec, BytesLike
from .payload import HEADER_BYTES, PayloadCodec, _Carried, _carrier_field, framed_as_ours

__all__ = ["FlatBuffersCodec", "Tensors"]

#: What a FlatBuffers Context receives and returns: arrays by tensor name.
Tensors = Mapping[str, npt.NDArray[Any]]


class FlatBuffersCodec(PayloadCodec):
    """The FlatBuffers tensor message in the one ``bytes`` field of the RPC's messages."""

    name = "flatbuffers"

    def decode_payload(self, payload: memoryview) -> dict[str, npt.NDArray[Any]]:
        return read_tensors(payload)

    def encode_payload(self, value: Any) -> Sequence[BytesLike]:
        return write_tensors(_mapping(value))

    def bind(self, message: Descriptor) -> BoundCodec:
        return _CarriedTensors(self, message, _carrier_field(self, message))

    def payload_from_json(self, value: Any) -> dict[str, npt.NDArray[Any]]:
        """``{"tensors": [{"name", "datatype", "shape", "data": [numbers]}]}``, as the schema."""
        tensors = value.get("tensors") if isinstance(value, dict) else None
        if not isinstance(tensors, list):
            raise UsageError(
                'a tensor message in JSON is {"tensors": [{"name": ..., "datatype": ..., '
                f'"shape": [...], "data": [...]}}, ...]}}, not {value!r}'
            )
        arrays: dict[str, npt.NDArray[Any]] = {}
        for index, tensor in enumerate(tensors):
            name, array = _tensor_from_json(tensor, f"tensors[{index}]")
            if name in arrays:
                raise UsageError(f"tensors[{index}]: the name {name!r} appears twice")
            arrays[name] = array
        return arrays


def _mapping(value: Any) -> Mapping[str, Any]:
    if type(value) is not dict and not isinstance(value, Mapping):
        raise UsageError(
            f"a FlatBuffers tensor message is a mapping of name -> array, not "
            f"{type(value).__name__}"
        )
    return value


class _CarriedTensors(_Carried):
    """The codec bound to its carrier: the same messages as every payload codec's, read and
    written whole (no view of the payload on the way in, no list of pieces on the way out)."""

    __slots__ = ()

    def decode(self, data: bytes) -> Any:
        if type(data) is bytes and framed_as_ours(data, self._tag):
            return read_tensors(data, HEADER_BYTES)
        return read_tensors(self.unwrap(data))

    def encode(self, value: Any) -> bytes:
        return write_message(_mapping(value), self._tag)


def _tensor_from_json(tensor: Any, where: str) -> tuple[str, npt.NDArray[Any]]:
    if not isinstance(tensor, dict) or set(tensor) != {"name", "datatype", "shape", "data"}:
        raise UsageError(f"{where} needs exactly name, datatype, shape and data; got {tensor!r}")
    datatype = DATATYPES.get(tensor["datatype"])
    if datatype is None or datatype.wire == BYTES:
        known = ", ".join(name for name in DATATYPES if name != BYTES)
        raise UsageError(f"{where}.datatype {tensor['datatype']!r} is not one of {known}")
    try:
        data = np.asarray(tensor["data"], dtype=datatype.dtype)
        return str(tensor["name"]), data.reshape(tensor["shape"])
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{where}: data does not fit shape {tensor['shape']!r}: {exc}") from None
