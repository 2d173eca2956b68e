"""Malformed tensor messages never crash the reader or read outside the buffer: each one is
InvalidArgument naming the field, and random corruption never raises anything else."""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncinfer.codecs._tensor_read import read_tensors
from asyncinfer.codecs._tensor_write import write_tensors
from asyncinfer.errors import InvalidArgument

Patch = Callable[[bytearray], None]


def valid(**arrays: np.ndarray) -> bytearray:
    return bytearray(b"".join(write_tensors(arrays or {"x": np.zeros((2, 3), "<f4")})))


def u32(buf: bytearray, pos: int) -> int:
    return int(struct.unpack_from("<I", buf, pos)[0])


def put(buf: bytearray, pos: int, value: int, fmt: str = "<I") -> None:
    struct.pack_into(fmt, buf, pos, value)


def table(buf: bytearray, index: int = 0) -> int:
    """The position of tensor ``index``'s table (follows the offsets as the writer made them)."""
    entry = 40 + 4 * index
    return entry + u32(buf, entry)


def field(buf: bytearray, slot: int, index: int = 0) -> int:
    return table(buf, index) + 4 + 4 * slot


def target(buf: bytearray, slot: int, index: int = 0) -> int:
    pos = field(buf, slot, index)
    return pos + u32(buf, pos)


def rename(buf: bytearray, slot: int, old: bytes, new: bytes) -> None:
    start = target(buf, slot) + 4
    assert buf[start : start + len(old)] == old and len(old) == len(new)
    buf[start : start + len(new)] = new


CASES: dict[str, tuple[Patch, str]] = {
    "truncated to 5 bytes": (
        lambda b: b.__delitem__(slice(5, None)),
        r"^buffer has 5 bytes; a TensorMessage needs at least 8",
    ),
    "truncated inside the data": (
        lambda b: b.__delitem__(slice(-3, None)),
        r"^tensors\[0\] \('x'\)\.data vector of 24 x 1 bytes at byte \d+ runs past the end",
    ),
    "wrong file identifier": (
        lambda b: b.__setitem__(slice(4, 8), b"NOPE"),
        r"^buffer has file identifier b'NOPE'; a TensorMessage has b'AITM'",
    ),
    "root offset past the end": (
        lambda b: put(b, 0, 1 << 20),
        r"^root offset 1048576 at byte 0 points outside the \d+ bytes",
    ),
    "tensor offset past the end": (
        lambda b: put(b, 40, 1 << 24),
        r"^tensors\[0\] offset 16777216 at byte 40 points outside",
    ),
    "name offset past the end": (
        lambda b: put(b, field(b, 0), 1 << 24),
        r"^tensors\[0\]\.name offset 16777216 at byte \d+ points outside",
    ),
    "data offset of zero": (
        lambda b: put(b, field(b, 3), 0),
        r"^tensors\[0\] \('x'\)\.data offset 0 at byte \d+ points outside",
    ),
    "vtable outside the buffer": (
        lambda b: put(b, table(b), -(1 << 20), "<i"),
        r"^tensors\[0\] vtable at byte \d+ is misaligned or outside",
    ),
    "misaligned table": (
        lambda b: put(b, 40, u32(b, 40) + 1),
        r"^tensors\[0\] table at byte \d+ is misaligned",
    ),
    "tensors vector length past the end": (
        lambda b: put(b, 36, 1 << 28),
        r"^tensors vector of 268435456 x 4 bytes at byte 40 runs past the end",
    ),
    "data vector length past the end": (
        lambda b: put(b, target(b, 3), 1 << 30),
        r"^tensors\[0\] \('x'\)\.data vector of 1073741824 x 1 bytes .* runs past the end",
    ),
    "shape vector length past the end": (
        lambda b: put(b, target(b, 2), 1 << 29),
        r"^tensors\[0\] \('x'\)\.shape vector of 536870912 x 8 bytes .* runs past the end",
    ),
    "name without its NUL": (
        lambda b: b.__setitem__(target(b, 0) + 5, 0x41),
        r"^tensors\[0\]\.name string is not NUL-terminated",
    ),
    "name not UTF-8": (
        lambda b: b.__setitem__(target(b, 0) + 4, 0xFF),
        r"^tensors\[0\]\.name is not UTF-8",
    ),
    "missing name": (
        lambda b: put(b, 16 + 4, 0, "<H"),
        r"^tensors\[0\]\.name is missing; every tensor needs it",
    ),
    "datatype that does not match the data": (
        lambda b: rename(b, 1, b"FP32", b"FP64"),
        r"^tensors\[0\] \('x'\)\.data has 24 bytes; shape \[2, 3\] of FP64 needs 48",
    ),
    "shape that does not match the data": (
        lambda b: put(b, target(b, 2) + 4 + 8, 4, "<q"),
        r"^tensors\[0\] \('x'\)\.data has 24 bytes; shape \[2, 4\] of FP32 needs 32",
    ),
    "negative dimension": (
        lambda b: put(b, target(b, 2) + 4, -2, "<q"),
        r"^tensors\[0\] \('x'\)\.shape is \[-2, 3\]; dimensions must be >= 0",
    ),
    "unknown datatype": (
        lambda b: rename(b, 1, b"FP32", b"FP33"),
        r"^tensors\[0\] \('x'\)\.datatype 'FP33' is not a datatype; expected one of BOOL, UINT8",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_malformed_buffer_names_its_field(case: str) -> None:
    patch, expected = CASES[case]
    buf = valid()
    patch(buf)
    with pytest.raises(InvalidArgument, match=expected):
        read_tensors(memoryview(bytes(buf)))


def test_bytes_tensors_and_duplicate_names_are_refused() -> None:
    buf = valid(x=np.zeros(5, "u1"))
    rename(buf, 1, b"UINT8", b"BYTES")
    with pytest.raises(InvalidArgument, match=r"\.datatype BYTES is not supported here"):
        read_tensors(memoryview(bytes(buf)))
    buf = valid(a=np.zeros(1), b=np.zeros(1))
    start = target(buf, 0, index=0) + 4  # both names are one byte: make the second "a"
    second = table(buf, 1) + 4
    buf[second + u32(buf, second) + 4] = buf[start]
    with pytest.raises(InvalidArgument, match=r"tensors\[1\]\.name 'a' appears twice"):
        read_tensors(memoryview(bytes(buf)))


def test_every_truncation_of_a_message_is_invalid() -> None:
    buf = bytes(valid(a=np.arange(5, dtype="<i4"), b=np.ones((2, 2), "<f8"), c=np.zeros(0, "u1")))
    for end in range(len(buf)):
        with pytest.raises(InvalidArgument):
            read_tensors(memoryview(buf[:end]))


REFERENCE = bytes(valid(a=np.arange(5, dtype="<i4"), bb=np.ones((2, 2), "<f8")))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(REFERENCE) - 1), st.integers(0, 255)), max_size=6))
def test_corrupted_messages_decode_or_are_invalid_never_worse(
    flips: list[tuple[int, int]],
) -> None:
    buf = bytearray(REFERENCE)
    for pos, value in flips:
        buf[pos] = value
    _decode_or_invalid(bytes(buf))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_decode_or_are_invalid_never_worse(data: bytes) -> None:
    _decode_or_invalid(b"\x00\x00\x00\x00AITM" + data if len(data) % 2 else data)


def _decode_or_invalid(data: bytes) -> None:
    try:
        arrays = read_tensors(memoryview(data))
    except InvalidArgument:
        return
    start = np.frombuffer(data, np.uint8).ctypes.data if data else 0
    for array in arrays.values():  # whatever decoded lies inside the buffer
        begin = array.__array_interface__["data"][0]
        assert start <= begin and begin + array.nbytes <= start + len(data)
