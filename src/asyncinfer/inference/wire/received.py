"""Received ModelInferRequest bytes, with the raw tensors left where they arrived.

Protobuf's parser copies every ``raw_input_contents`` entry into its own memory, and reading the
field copies it again into a new ``bytes``: two copies of every tensor before the data plane sees
it. For a large message, :class:`InferRequestCodec` splits those entries off first: it walks the
message's top-level fields (key, length, skip), keeps each raw entry as a read-only
``memoryview`` of the received bytes, and parses only the rest, the envelope (names, shapes,
parameters: a few hundred bytes), with protobuf. The data plane then views the tensors where
gRPC put them: no copy in. Small messages are parsed whole, which is cheaper for them.

The split is exact: protobuf reads repeated fields in order and scalars last-one-wins whatever
fields lie between, so parsing the envelope alone gives the message protobuf would give, less
field 7. Bytes the walk cannot follow are parsed whole, and protobuf's own error says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError

from ..._wire import read_varint
from ...codecs import PROTOBUF, BoundCodec, Codec
from ...errors import InvalidArgument
from ...pb.inference.grpc_service_pb2 import ModelInferRequest

__all__ = ["SPLIT_BYTES", "InferRequestCodec", "ReceivedInfer", "split_raw_inputs"]

#: Messages from this size on have their raw entries split off (below it, one parse is cheaper).
SPLIT_BYTES = 64 * 1024

_RAW_INPUT_CONTENTS = 7  # ModelInferRequest.raw_input_contents
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


class ReceivedInfer:
    """One received ModelInferRequest: its ``message``, and its raw entries when they were
    split off (``raw``: views of the received bytes, or the message's own entries once
    :meth:`envelope` moved them out; None: they are in ``message``)."""

    __slots__ = ("_envelope", "message", "raw")

    def __init__(
        self,
        message: ModelInferRequest,
        raw: Sequence[bytes | memoryview] | None = None,
        envelope: bytes | None = None,
    ) -> None:
        self.message = message
        self.raw = raw
        self._envelope = envelope

    def envelope(self) -> bytes | None:
        """The envelope's bytes (the message less its raw entries), which repeat from one
        request to the next of a client: the gRPC decoder's key for what it decoded before.
        None for a message with an id or parameters, which vary per request. A message whose
        raw entries are still its own has them moved out to ``raw`` first."""
        message = self.message
        if message.id or message.parameters:
            return None
        if self._envelope is None:
            if self.raw is None:
                self.raw = message.raw_input_contents[:]
                message.ClearField("raw_input_contents")
            self._envelope = message.SerializeToString()
        return self._envelope


def split_raw_inputs(data: bytes) -> tuple[bytes, list[memoryview]] | None:
    """The message's bytes without its raw_input_contents entries, and those entries as views
    of ``data``, in order; None when the bytes are not a well-formed run of fields."""
    view = memoryview(data)
    end = len(data)
    envelope: list[memoryview] = []
    raw: list[memoryview] = []
    pos = kept = 0  # kept: where the envelope's current run of fields began
    try:
        while pos < end:
            key, after = read_varint(view, pos)
            wire = key & 7
            if wire == _LENGTH_DELIMITED:
                length, body = read_varint(view, after)
                stop = body + length
                if stop > end:
                    return None
                if key >> 3 == _RAW_INPUT_CONTENTS:
                    if kept < pos:
                        envelope.append(view[kept:pos])
                    raw.append(view[body:stop])
                    kept = stop
                pos = stop
            elif wire == _VARINT:
                pos = read_varint(view, after)[1]
            elif wire == _FIXED64:
                pos = after + 8
            elif wire == _FIXED32:
                pos = after + 4
            else:
                return None  # groups: not in this message; protobuf will say what is wrong
    except ValueError:
        return None
    if pos != end:
        return None
    envelope.append(view[kept:end])
    return b"".join(envelope), raw


class _BoundInferRequest(BoundCodec):
    __slots__ = ()

    def decode(self, data: bytes) -> ReceivedInfer:
        if len(data) >= SPLIT_BYTES:
            split = split_raw_inputs(data)
            if split is not None:
                return ReceivedInfer(_parse(split[0]), split[1], split[0])
        return ReceivedInfer(_parse(data))

    def encode(self, value: Any) -> bytes:
        message = value.message if isinstance(value, ReceivedInfer) else value
        return message.SerializeToString()

    def from_json(self, value: Any) -> ReceivedInfer:
        return ReceivedInfer(PROTOBUF.bind(self.message).from_json(value))


def _parse(data: bytes) -> ModelInferRequest:
    try:
        return ModelInferRequest.FromString(data)
    except DecodeError as exc:
        raise InvalidArgument(
            f"bytes do not parse as {ModelInferRequest.DESCRIPTOR.full_name} ({exc})"
        ) from None


class InferRequestCodec(Codec):
    """ModelInferRequest as :class:`ReceivedInfer` (large tensors not copied); every other
    message as protobuf's codec reads it."""

    name = "infer-request"

    def bind(self, message: Descriptor) -> BoundCodec:
        if message.full_name == ModelInferRequest.DESCRIPTOR.full_name:
            return _BoundInferRequest(message)
        return PROTOBUF.bind(message)
