"""The default codec: protobuf messages of the RPC's own types, parsed and serialized by protobuf.

A Context may still return ``bytes`` it framed itself (a large tensor reply, say): they are
sent unchanged.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message

from ..errors import InvalidArgument, UsageError
from .base import BoundCodec, Codec

__all__ = ["ProtobufCodec", "serialize"]


def serialize(message: Message | bytes) -> bytes:
    """A message's bytes; bytes a Context framed itself pass through unchanged."""
    return message if type(message) is bytes else message.SerializeToString()  # type: ignore[union-attr]


class _BoundProtobuf(BoundCodec):
    __slots__ = ("message_class",)

    def __init__(self, message: Descriptor) -> None:
        super().__init__(message)
        self.message_class: type[Message] = message_factory.GetMessageClass(message)

    def decode(self, data: bytes) -> Message:
        try:
            return self.message_class.FromString(data)
        except DecodeError as exc:
            raise InvalidArgument(
                f"bytes do not parse as {self.message.full_name} ({exc})"
            ) from None

    encode = staticmethod(serialize)  # type: ignore[assignment]

    def from_json(self, value: Any) -> Message:
        try:
            return json_format.ParseDict(value, self.message_class())
        except json_format.ParseError as exc:
            raise UsageError(str(exc)) from None


class ProtobufCodec(Codec):
    """Protobuf's own encoding of the RPC's message types (the default of every Context)."""

    name = "protobuf"

    def bind(self, message: Descriptor) -> BoundCodec:
        return _BoundProtobuf(message)
