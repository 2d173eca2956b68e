"""The raw codec: the payload is bytes the Context frames itself, handed over without a copy.

A request arrives as a read-only ``memoryview`` of the received message (slice it, wrap it with
``numpy.frombuffer``; it stays valid as long as you hold it). A reply is a bytes-like object or
a sequence of them, written once, in order, into the message.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import UsageError
from .base import BytesLike
from .payload import PayloadCodec

__all__ = ["RawCodec"]


_BYTES_LIKE = (bytes, bytearray, memoryview, np.ndarray)


class RawCodec(PayloadCodec):
    """Bytes in, bytes out: the payload of a one-``bytes``-field message, framed by the user."""

    name = "raw"

    def decode_payload(self, payload: memoryview) -> memoryview:
        return payload

    def encode_payload(self, value: Any) -> Sequence[BytesLike]:
        pieces = value if isinstance(value, list | tuple) else (value,)
        if all(isinstance(piece, _BYTES_LIKE) for piece in pieces):
            return pieces
        raise UsageError(
            f"a raw reply is a bytes-like object or a list of them, not {type(value).__name__}"
        )

    def payload_from_json(self, value: Any) -> bytes:
        """JSON gives raw bytes the way protobuf's JSON mapping does: a base64 string."""
        if not isinstance(value, str):
            raise UsageError(f"a raw payload is given as a base64 string, not {value!r}")
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise UsageError(f"a raw payload is given as base64: {exc}") from None
