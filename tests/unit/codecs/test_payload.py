"""Payload codecs ride in a message of one bytes field: framing, binding checks, raw, JSON."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncinfer import ConfigError, Resources, UnaryContext, codecs, rpc_method
from asyncinfer._wire import padded_varint, read_varint, varint
from asyncinfer.errors import InvalidArgument, UsageError

from ...codec_services import JSON, Blob, echo_pb2
from ...protos import ping_pb2

BLOB = Blob.DESCRIPTOR
RAW = codecs.RAW.bind(BLOB)


@given(st.binary(max_size=3000))
def test_raw_messages_are_protobuf_messages_both_ways(payload: bytes) -> None:
    ours = RAW.encode(payload)
    assert Blob.FromString(ours).data == payload  # protobuf reads what we write
    assert bytes(RAW.decode(Blob(data=payload).SerializeToString())) == payload  # and back
    assert bytes(RAW.decode(ours)) == payload


def test_the_payload_starts_eight_bytes_in_so_its_alignment_holds_in_memory() -> None:
    message = RAW.encode(b"x" * 1000)
    assert len(message) == codecs.HEADER_BYTES + 1000 and message[8:] == b"x" * 1000


def test_decoding_is_a_view_of_the_received_bytes_not_a_copy() -> None:
    message = Blob(data=b"abc" * 100).SerializeToString()
    view = RAW.decode(message)
    assert isinstance(view, memoryview) and view.readonly
    assert np.shares_memory(np.frombuffer(view, np.uint8), np.frombuffer(message, np.uint8))


@given(st.integers(0, 2**42 - 1), st.integers(1, 10))
def test_padded_varints_read_back(value: int, size: int) -> None:
    encoded = padded_varint(value, size)
    if value >= 1 << (7 * size):
        assert encoded is None
    else:
        assert encoded is not None and len(encoded) == size
        assert read_varint(encoded, 0) == (value, size)
    assert read_varint(varint(value), 0)[0] == value


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (b"\x10\x01", r"must hold only its bytes field asyncinfer.tests.codecs.Blob.data"),
        (b"\x0a\x85", r"the length of asyncinfer.tests.codecs.Blob.data is cut off"),
        (b"\x0a\x05abc", r"says it has 5 bytes, and 3 follow its length$"),
        (b"\x0a\x01ab", r"says it has 1 bytes, and 2 follow .*must hold only that field"),
    ],
)
def test_messages_that_are_not_just_the_bytes_field_are_invalid(
    message: bytes, expected: str
) -> None:
    with pytest.raises(InvalidArgument, match=expected):
        RAW.decode(message)


def test_an_empty_message_is_an_empty_payload() -> None:
    assert bytes(RAW.decode(b"")) == b""


def test_raw_replies_are_bytes_like_or_pieces() -> None:
    assert Blob.FromString(RAW.encode([b"ab", memoryview(b"cd"), np.array([1], "u1")])).data == (
        b"abcd\x01"
    )
    with pytest.raises(UsageError, match="bytes-like object or a list of them, not str"):
        RAW.encode("text")


def test_raw_json_is_base64_like_protobufs_mapping() -> None:
    assert RAW.from_json("aGk=") == b"hi"
    with pytest.raises(UsageError, match="base64"):
        RAW.from_json("not base64!")


def test_a_codec_that_cannot_carry_the_message_fails_the_class_definition() -> None:
    with pytest.raises(ConfigError) as caught:

        class Bad(UnaryContext[Any, Any, Resources]):
            method = rpc_method(ping_pb2, "Ping", "Ping")
            codec = codecs.FLATBUFFERS

            async def execute(self, request: Any) -> Any:
                return request

    text = str(caught.value)
    assert "<locals>.Bad.codec: asyncinfer.examples.Ping.Ping's request type: the " in text
    assert "has payload (bytes), delay_us (uint32)" in text
    assert "`message PingRequestPayload { bytes data = 1; }`" in text
    assert "or use codec = codecs.PROTOBUF" in text


def test_a_codec_must_be_a_codec() -> None:
    with pytest.raises(ConfigError, match=r"Bad.codec: codec must be an asyncinfer.codecs.Codec"):

        class Bad(UnaryContext[Any, Any, Resources]):
            method = rpc_method(echo_pb2, "Echo", "Raw")
            codec = "flatbuffers"  # type: ignore[assignment]

            async def execute(self, request: Any) -> Any:
                return request


def test_codecs_by_name() -> None:
    assert codecs.codec_named("flatbuffers") is codecs.FLATBUFFERS
    assert codecs.codec_named("protobuf") is codecs.PROTOBUF
    assert codecs.codec_named("tests.codec_services:JSON") is JSON
    with pytest.raises(ConfigError, match=r"unknown codec 'fb': give one of \['flatbuffers'"):
        codecs.codec_named("fb")
    with pytest.raises(ConfigError, match=r"not an asyncinfer\.codecs\.Codec"):
        codecs.codec_named("tests.codec_services:Blob")


def test_a_users_codec_round_trips() -> None:
    bound = JSON.bind(BLOB)
    assert bound.decode(bound.encode({"a": [1, 2]})) == {"a": [1, 2]}
    with pytest.raises(InvalidArgument, match="not JSON"):
        bound.decode(RAW.encode(b"{"))


@given(st.binary(max_size=40), st.sampled_from([1, 15, 16, 2047, 2048, 2**21, 2**28, 2**29 - 1]))
def test_the_fast_reading_of_our_framing_agrees_with_the_varint_reading(
    payload: bytes, number: int
) -> None:
    """Unwrapping reads a message framed as we frame it by comparing its first 8 bytes; that
    must give what reading the key and varint gives, for every field number and length."""
    tag = varint(number << 3 | 2)
    for prefix in (padded_varint(len(payload), 8 - len(tag)), varint(len(payload))):
        if prefix is None:
            continue
        message = tag + prefix + payload
        length, start = read_varint(message, len(tag))
        expected = message[start:] if start + length == len(message) else None
        for extra in (b"", b"x"):  # and with a byte too many, which is invalid
            bound = _bound_to_field(number)
            try:
                got: bytes | None = bytes(bound.unwrap(message + extra))
            except InvalidArgument:
                got = None
            assert got == (expected if not extra else None)


def _bound_to_field(number: int) -> Any:
    from asyncinfer.codecs.payload import _Carried

    field = Blob.DESCRIPTOR.fields[0]
    carried = _Carried(codecs.RAW, BLOB, field)
    carried._tag = varint(number << 3 | 2)  # as if the carrier declared field ``number``
    return carried


def test_a_length_that_does_not_fit_the_padded_framing_is_read_as_a_varint() -> None:
    """Field 2**28 has a 5-byte key, leaving 3 bytes for a padded length (< 2**21): a longer
    payload's length is a plain varint, and a message one byte short of it is invalid."""
    bound = _bound_to_field(2**28)
    length = 1 << 21
    short = varint(2**28 << 3 | 2) + varint(length) + bytes(length - 1)  # 8 + length bytes
    with pytest.raises(InvalidArgument, match=f"says it has {length} bytes, and {length - 1}"):
        bound.unwrap(short)
    assert len(bound.unwrap(bound.encode(bytes(length)))) == length
