"""Protobuf wire-format pieces for messages framed by hand: varints and length-delimited keys.

Serializing a large tensor reply through Python protobuf copies it several times; writing the
field key, the varint length and then the bytes ourselves produces identical bytes with one
copy. Both hand-framed serializers (inference replies, SysV tensor messages) use these.
"""

from __future__ import annotations

__all__ = ["length_delimited", "varint"]

_LENGTH_DELIMITED = 2  # the wire type of bytes, strings and embedded messages


def varint(value: int) -> bytes:
    """Protobuf's base-128 varint encoding of a non-negative int."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def length_delimited(field_number: int, length: int) -> bytes:
    """The key and length prefix of a length-delimited field of ``length`` bytes."""
    return varint(field_number << 3 | _LENGTH_DELIMITED) + varint(length)
