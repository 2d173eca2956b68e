"""Protobuf wire-format pieces for messages framed by hand: varints and length-delimited keys.

Serializing a large tensor reply through Python protobuf copies it several times; writing the
field key, the varint length and then the bytes ourselves produces identical bytes with one
copy. The hand-framed serializers (inference replies, SysV tensor messages, the payload
codecs) use these.
"""

from __future__ import annotations

__all__ = ["length_delimited", "padded_varint", "read_varint", "varint"]

_LENGTH_DELIMITED = 2  # the wire type of bytes, strings and embedded messages
_MAX_VARINT_BYTES = 10


def varint(value: int) -> bytes:
    """Protobuf's base-128 varint encoding of a non-negative int."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def padded_varint(value: int, size: int) -> bytes | None:
    """``value`` as a varint of exactly ``size`` bytes (zero groups continue it), or None when
    it needs more. Parsers accept such varints; they let a payload start at a chosen offset."""
    if size < 1 or size > _MAX_VARINT_BYTES or value >= 1 << (7 * size):
        return None
    out = bytearray(size)
    for index in range(size - 1):
        out[index] = value & 0x7F | 0x80
        value >>= 7
    out[-1] = value
    return bytes(out)


def read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """The varint at ``data[pos:]`` and the position after it; ValueError if it is cut off."""
    value = shift = 0
    for byte in data[pos : pos + _MAX_VARINT_BYTES]:
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos + shift // 7
    raise ValueError(f"the varint at byte {pos} is cut off or longer than 10 bytes")


def length_delimited(field_number: int, length: int) -> bytes:
    """The key and length prefix of a length-delimited field of ``length`` bytes."""
    return varint(field_number << 3 | _LENGTH_DELIMITED) + varint(length)
