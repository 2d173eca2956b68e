"""Codecs whose bytes ride in the one ``bytes`` field of the RPC's protobuf message.

A method served with FlatBuffers or raw bytes is still declared in a .proto, with a request
and reply message of exactly one ``bytes`` field (``message Blob { bytes data = 1; }``). On the
wire each message is then a valid protobuf message: the field's key, its varint length and the
payload. Reflection, health, grpcurl and protobuf-only clients all see a truthful description,
and the payload costs no copy: the codec reads a memoryview of the received bytes, and writes
the key and length in front of the payload's pieces in one join.

The length is written as a varint padded to fill an 8-byte header (parsers accept padded
varints), so the payload starts 8 bytes into the message: its own alignment is kept in memory
(grpc hands over messages as Python bytes objects, whose data is 16-byte aligned).
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from .._wire import padded_varint, read_varint, varint
from ..errors import ConfigError, InvalidArgument
from .base import BoundCodec, BytesLike, Codec

__all__ = ["HEADER_BYTES", "PayloadCodec", "framed_as_ours", "framing"]

#: Where the payload starts in a message written by a payload codec.
HEADER_BYTES = 8
_EMPTY = memoryview(b"")


class PayloadCodec(Codec):
    """A codec for the payload of a one-``bytes``-field message. Subclass it to add a format:
    implement ``decode_payload``, ``encode_payload`` and ``payload_from_json``."""

    @abc.abstractmethod
    def decode_payload(self, payload: memoryview) -> Any:
        """The value in ``payload`` (a view of the received bytes); InvalidArgument if bad."""

    @abc.abstractmethod
    def encode_payload(self, value: Any) -> Sequence[BytesLike]:
        """The payload of ``value`` as pieces, written once, in order, into the message."""

    @abc.abstractmethod
    def payload_from_json(self, value: Any) -> Any:
        """A value to encode from parsed JSON; UsageError if it does not fit."""

    def bind(self, message: Descriptor) -> BoundCodec:
        return _Carried(self, message, _carrier_field(self, message))


def _carrier_field(codec: Codec, message: Descriptor) -> FieldDescriptor:
    fields = list(message.fields)
    if len(fields) == 1 and _is_single_bytes(fields[0]):
        return fields[0]
    described = ", ".join(f"{f.name} ({_kind(f)})" for f in fields) or "no fields"
    raise ConfigError(
        f"the {codec.name or type(codec).__qualname__} codec carries its payload in a message "
        f"of exactly one `bytes` field, and {message.full_name} has {described}; declare the "
        f"RPC with such a message (e.g. `message {message.name}Payload {{ bytes data = 1; }}`) "
        "or use codec = codecs.PROTOBUF"
    )


def _is_single_bytes(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_BYTES and not _repeated(field)


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _kind(field: FieldDescriptor) -> str:
    kind = _TYPE_NAMES.get(field.type, "?")
    return f"repeated {kind}" if _repeated(field) else kind


_TYPE_NAMES = {
    getattr(FieldDescriptor, name): name[len("TYPE_") :].lower()
    for name in dir(FieldDescriptor)
    if name.startswith("TYPE_")
}


def _nbytes(piece: Any) -> int:
    if type(piece) is bytes:
        return len(piece)
    return piece.nbytes if type(piece) is np.ndarray else memoryview(piece).nbytes


@functools.lru_cache(maxsize=256)
def framing(tag: bytes, length: int) -> bytes:
    """The key and length we write in front of a payload of ``length`` bytes (8 bytes, the
    length padded, unless it needs more)."""
    return tag + (padded_varint(length, HEADER_BYTES - len(tag)) or varint(length))


def framed_as_ours(data: bytes, tag: bytes) -> bool:
    """Whether ``data`` is framed as we frame it: ``tag``, then the length of the rest padded
    to fill 8 bytes (so the payload is ``data[HEADER_BYTES:]``, all of it valid framing)."""
    size = len(data) - HEADER_BYTES
    header = framing(tag, size) if size >= 0 else b""
    return len(header) == HEADER_BYTES and data.startswith(header)


class _Carried(BoundCodec):
    """A payload codec bound to its carrier message and field."""

    __slots__ = ("_codec", "_field_name", "_tag")

    def __init__(self, codec: PayloadCodec, message: Descriptor, field: FieldDescriptor) -> None:
        super().__init__(message)
        self._codec = codec
        self._tag = varint(field.number << 3 | 2)
        self._field_name = field.name

    def decode(self, data: bytes) -> Any:
        return self._codec.decode_payload(self.unwrap(data))

    def unwrap(self, data: bytes) -> memoryview:
        """A view of the payload in ``data``, or InvalidArgument if it is not all the message."""
        if not data:
            return _EMPTY  # proto3 leaves an empty bytes field out: the message is empty
        if framed_as_ours(data, self._tag):  # the usual case
            return memoryview(data)[HEADER_BYTES:]
        if not data.startswith(self._tag):
            raise InvalidArgument(
                f"the message must hold only its bytes field {self._where()}, and it starts "
                f"with another field (byte 0x{data[0]:02x})"
            )
        try:
            length, start = read_varint(data, len(self._tag))
        except ValueError:
            raise InvalidArgument(f"the length of {self._where()} is cut off") from None
        if start + length != len(data):
            got = len(data) - start
            raise InvalidArgument(
                f"{self._where()} says it has {length} bytes, and {got} follow its length"
                + ("" if got < length else "; the message must hold only that field")
            )
        return memoryview(data)[start:]

    def _where(self) -> str:
        return f"{self.message.full_name}.{self._field_name}"

    def encode(self, value: Any) -> bytes:
        pieces: Sequence[Any] = self._codec.encode_payload(value)
        return b"".join((framing(self._tag, sum(map(_nbytes, pieces))), *pieces))

    def from_json(self, value: Any) -> Any:
        return self._codec.payload_from_json(value)
