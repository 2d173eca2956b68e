"""The codec interface: how an RPC's messages become bytes on the wire and back.

A :class:`Codec` is a wire format. When a Context class is defined (or a client builds a
:class:`~asyncinfer.client.Method`), the codec is bound to each message type of the RPC's
protobuf method descriptor, and the result, a :class:`BoundCodec`, is what runs per message:
``decode`` on received bytes, ``encode`` on values to send. The method descriptor stays the one
source of the RPC's name, call shape and message types; the codec only says how a message's
bytes are to be read.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy.typing as npt
from google.protobuf.descriptor import Descriptor, MethodDescriptor

from ..errors import ConfigError

__all__ = ["BoundCodec", "BytesLike", "Codec", "bind_method"]

#: What a codec writes into a message: anything exposing a contiguous buffer.
BytesLike = bytes | bytearray | memoryview | npt.NDArray[Any]


class BoundCodec(abc.ABC):
    """A codec bound to one message type: decodes received bytes, encodes values to send.

    ``decode`` runs once per received message on the event loop thread, where protobuf parsing
    runs; it must raise :class:`~asyncinfer.errors.InvalidArgument` saying what is wrong with
    bad bytes (the server prefixes the RPC's path) and nothing else. ``encode`` runs once per
    message sent and returns the message's bytes.
    """

    __slots__ = ("message",)

    def __init__(self, message: Descriptor) -> None:
        self.message = message

    @abc.abstractmethod
    def decode(self, data: bytes) -> Any:
        """The value carried by ``data``, or InvalidArgument naming the part that is wrong."""

    @abc.abstractmethod
    def encode(self, value: Any) -> bytes:
        """The bytes of one message carrying ``value``."""

    @abc.abstractmethod
    def from_json(self, value: Any) -> Any:
        """A value to encode, from parsed JSON (the CLI's --request); UsageError if it misfits."""


class Codec(abc.ABC):
    """A wire format for an RPC's messages. Subclass it (or PayloadCodec) to add one."""

    #: The name the CLI's --codec takes; unique among the codecs a process uses.
    name: ClassVar[str] = ""

    @abc.abstractmethod
    def bind(self, message: Descriptor) -> BoundCodec:
        """This codec for ``message``; ConfigError saying what to change if it cannot carry it."""

    def __repr__(self) -> str:
        return f"<codec {self.name or type(self).__qualname__}>"


def bind_method(codec: object, method: MethodDescriptor) -> tuple[BoundCodec, BoundCodec]:
    """``codec`` bound to the request and reply types of ``method``, or a ConfigError."""
    if not isinstance(codec, Codec):
        raise ConfigError(
            "codec must be an asyncinfer.codecs.Codec (codecs.PROTOBUF, codecs.FLATBUFFERS, "
            f"codecs.RAW or a subclass of your own), not {codec!r}"
        )
    bound = []
    for role, message in (("request", method.input_type), ("reply", method.output_type)):
        try:
            bound.append(codec.bind(message))
        except ConfigError as exc:
            raise ConfigError(f"{method.full_name}'s {role} type: {exc}") from None
    return bound[0], bound[1]
