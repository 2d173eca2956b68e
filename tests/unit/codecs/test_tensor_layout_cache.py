"""The reader's cache of verified layouts is exact: a message decodes to the same arrays, or
fails with the same error, whether or not a layout is cached; a cached layout serves only a
message of the same size whose header (every byte the walk read) is byte-identical."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import flatbuffers
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncinfer import codecs
from asyncinfer.codecs import _tensor_read
from asyncinfer.codecs._tensor_read import clear_cache, read_tensors
from asyncinfer.codecs._tensor_write import write_tensors
from asyncinfer.errors import InvalidArgument

from ...codec_services import Blob


@pytest.fixture(autouse=True)
def _cold_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_tensor_read, "ADMIT_FIRST", True)  # a layout is cached when first read
    clear_cache()
    yield
    clear_cache()


def message(**arrays: np.ndarray) -> bytes:
    return b"".join(write_tensors(arrays))  # type: ignore[arg-type]  # ndarrays are buffers


def outcome(buf: bytes) -> tuple[str, Any]:
    """What reading ``buf`` gives: its error, or each array's name, dtype, shape, place, bytes."""
    try:
        arrays = read_tensors(memoryview(buf))
    except InvalidArgument as exc:
        return "error", exc.message
    base = np.frombuffer(buf, np.uint8).ctypes.data if buf else 0
    return "ok", [
        (name, a.dtype.str, a.shape, a.__array_interface__["data"][0] - base, a.tobytes())
        for name, a in arrays.items()
    ]


def cold_and_warm(original: bytes, changed: bytes) -> tuple[tuple[str, Any], tuple[str, Any]]:
    """Reading ``changed`` with nothing cached, then just after ``original`` was read."""
    clear_cache()
    cold = outcome(changed)
    clear_cache()
    assert outcome(original)[0] == "ok"
    return cold, outcome(changed)


def cut(buf: bytes) -> tuple[tuple[int, int], ...]:
    """Where the walk reads ``buf`` (the walk alone files nothing)."""
    walk = _tensor_read._Walk(memoryview(buf))
    walk.message()
    return walk.cut()


def header_places(buf: bytes) -> list[int]:
    return [pos for start, end in cut(buf) for pos in range(start, end)]


def key(buf: bytes) -> tuple[int, tuple[tuple[int, int], ...], bytes]:
    return len(buf), cut(buf), b"".join(buf[start:end] for start, end in cut(buf))


TWO = message(a=np.arange(5, dtype="<i4"), bb=np.ones((2, 2), "<f8"))


def test_the_header_is_all_but_the_data() -> None:
    arrays = read_tensors(memoryview(TWO))
    base = np.frombuffer(TWO, np.uint8).ctypes.data
    a, bb = (arrays[n].__array_interface__["data"][0] - base for n in ("a", "bb"))
    # Everything up to the first data vector, then the second one's length word.
    assert cut(TWO) == ((0, a), (bb - 4, bb))
    assert list(_tensor_read._layouts) == [key(TWO)]


MESSAGES = {
    "two tensors": TWO,
    "one tensor": message(x=np.arange(6, dtype="<f4").reshape(2, 3)),
    "a scalar and an empty tensor": message(s=np.array(2.5), e=np.zeros((0, 4), "<i2")),
}


@pytest.mark.parametrize("name", list(MESSAGES))
def test_a_change_to_any_header_byte_is_walked_again(name: str) -> None:
    buf = MESSAGES[name]
    outcomes = set()
    for pos in header_places(buf):
        for value in {0, 0xFF, buf[pos] ^ 1, buf[pos] ^ 0x80}:
            changed = bytearray(buf)
            changed[pos] = value
            cold, warm = cold_and_warm(buf, bytes(changed))
            assert warm == cold, (pos, value)
            outcomes.add(cold[0])
    assert outcomes == {"ok", "error"}  # some changes break the message, some do not


def walks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the walks read_tensors makes from now on."""
    counted: list[int] = []
    message = _tensor_read._Walk.message

    def counting(self: Any) -> Any:
        counted.append(1)
        return message(self)

    monkeypatch.setattr(_tensor_read._Walk, "message", counting)
    return counted


def test_a_message_differing_only_in_data_bytes_reuses_the_layout_and_its_own_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read_tensors(memoryview(TWO))
    header = set(header_places(TWO))
    changed = bytes(b if pos in header else (pos * 7 + 1) % 256 for pos, b in enumerate(TWO))
    counted = walks(monkeypatch)
    got = read_tensors(memoryview(changed))
    assert not counted  # a hit: not walked
    ((_, a), (bb, _)) = cut(TWO)
    assert got["a"].tobytes() == changed[a : a + 20] != TWO[a : a + 20]
    assert got["bb"].tobytes() == changed[bb + 4 : bb + 36]
    cold, warm = cold_and_warm(TWO, changed)
    assert cold == warm


def test_a_message_of_another_size_is_walked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    longer = message(x=np.zeros(20, "u1"))
    read_tensors(memoryview(longer))
    read_tensors(memoryview(message(x=np.zeros(19, "u1"))))  # same places, one byte shorter
    counted = walks(monkeypatch)
    read_tensors(memoryview(longer))
    assert not counted
    with pytest.raises(InvalidArgument, match=r"runs past the end"):
        read_tensors(memoryview(longer[:-1]))
    assert counted
    assert outcome(longer + bytes(8))[0] == "ok"  # trailing bytes were allowed before, and still


def refill(buf: bytes, places: list[tuple[int, int]], seed: int) -> bytes:
    """``buf`` with every byte outside ``places`` replaced by random ones."""
    out = bytearray(np.random.default_rng(seed).integers(0, 256, len(buf), dtype=np.uint8))
    for start, end in places:
        out[start:end] = buf[start:end]
    return bytes(out)


def walked(buf: bytes) -> tuple[str, Any]:
    try:
        return "ok", _tensor_read._Walk(memoryview(buf)).message()
    except InvalidArgument as exc:
        return "error", exc.message


@pytest.mark.parametrize("name", [*MESSAGES, "built back to front"])
def test_the_walk_depends_only_on_the_bytes_it_says_it_read(name: str) -> None:
    buf = MESSAGES.get(name) or builder_message()
    walk = _tensor_read._Walk(memoryview(buf))
    layout = walk.message()
    for seed in range(20):
        assert walked(refill(buf, walk.read, seed)) == ("ok", layout)


def builder_message() -> bytes:
    """Back to front with flatbuffers.Builder (what flatc's generated Add* functions call), the
    shape and the strings made first, so they lie after the data: the walk reads past the data
    vector."""
    builder = flatbuffers.Builder(256)
    shape = builder.CreateNumpyVector(np.array([2, 2], "<i8"))
    name, datatype = builder.CreateString("m"), builder.CreateString("INT16")
    data = builder.CreateNumpyVector(np.arange(4, dtype="<i2").view(np.uint8))
    builder.StartObject(4)
    for slot, offset in enumerate((name, datatype, shape, data)):
        builder.PrependUOffsetTRelativeSlot(slot, offset, 0)
    tensor = builder.EndObject()
    builder.StartVector(4, 1, 4)
    builder.PrependUOffsetTRelative(tensor)
    tensors = builder.EndVector()
    builder.StartObject(1)
    builder.PrependUOffsetTRelativeSlot(0, tensors, 0)
    builder.Finish(builder.EndObject(), file_identifier=b"AITM")
    return bytes(builder.Output())


def test_every_byte_of_a_message_laid_out_back_to_front() -> None:
    buf = builder_message()
    assert cut(buf)[-1][1] == len(buf)  # the shape vector was written first, so lies last
    for pos in range(len(buf)):
        for value in {0, 0xFF, buf[pos] ^ 1}:
            changed = bytearray(buf)
            changed[pos] = value
            cold, warm = cold_and_warm(buf, bytes(changed))
            assert warm == cold, (pos, value)


REFERENCE = message(a=np.arange(5, dtype="<i4"), bb=np.ones((2, 2), "<f8"), c=np.zeros(0, "u1"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(REFERENCE) - 1), st.integers(0, 255)), max_size=4))
def test_corrupted_messages_read_the_same_cached_or_not(flips: list[tuple[int, int]]) -> None:
    buf = bytearray(REFERENCE)
    for pos, value in flips:
        buf[pos] = value
    cold, warm = cold_and_warm(REFERENCE, bytes(buf))
    assert warm == cold
    walk = _tensor_read._Walk(memoryview(bytes(buf)))
    try:
        layout = walk.message()
    except InvalidArgument:
        return
    assert walked(refill(bytes(buf), walk.read, len(flips))) == ("ok", layout)


def test_the_cache_is_bounded_and_least_recently_used_goes_first() -> None:
    first = message(x=np.zeros(1, "u1"))
    read_tensors(memoryview(first))
    for n in range(2, 2 + _tensor_read.CACHE_ENTRIES):
        read_tensors(memoryview(message(x=np.zeros(n, "u1"))))
        read_tensors(memoryview(first))  # kept recent
    assert len(_tensor_read._layouts) == _tensor_read.CACHE_ENTRIES
    assert len(_tensor_read._cuts) <= _tensor_read.CACHE_ENTRIES
    assert key(first) in _tensor_read._layouts
    assert key(message(x=np.zeros(2, "u1"))) not in _tensor_read._layouts
    assert key(message(x=np.zeros(3, "u1"))) in _tensor_read._layouts


def test_mutable_buffers_and_long_headers_are_not_cached() -> None:
    read_tensors(memoryview(bytearray(TWO)))
    assert not _tensor_read._layouts
    long_name = message(**{"n" * (_tensor_read.MAX_CACHED_HEADER + 1): np.zeros(3, "u1")})
    assert outcome(long_name)[0] == "ok"
    assert not _tensor_read._layouts


FLAT = codecs.FLATBUFFERS.bind(Blob.DESCRIPTOR)


def decoded(message: bytes | bytearray) -> tuple[str, Any]:
    try:
        arrays = FLAT.decode(message)  # type: ignore[arg-type]  # a bytearray, as bytes
    except InvalidArgument as exc:
        return "error", exc.message
    return "ok", {name: (a.dtype.str, a.shape, a.tobytes()) for name, a in arrays.items()}


def test_the_codec_reads_the_message_in_place_as_it_reads_the_payload() -> None:
    ours = FLAT.encode({"a": np.arange(5, dtype="<i4"), "bb": np.ones((2, 2), "<f8")})
    theirs = Blob(data=ours[8:]).SerializeToString()  # protobuf's framing: a 1-byte length
    assert theirs != ours and theirs.endswith(ours[8:])
    for cached in (False, True):
        if not cached:
            clear_cache()
        expected = outcome(ours[8:])
        assert expected[0] == "ok"
        for message in (ours, theirs, bytearray(ours)):
            got = decoded(message)
            assert got == ("ok", {n: (d, s, data) for n, d, s, _, data in expected[1]})
    arrays = FLAT.decode(ours)
    assert not arrays["a"].flags.writeable
    assert np.shares_memory(arrays["a"], np.frombuffer(ours, np.uint8))


def test_bad_framing_is_refused_by_the_codec_cached_or_not() -> None:
    ours = FLAT.encode({"x": np.zeros(4, "u1")})
    FLAT.decode(ours)
    for bad in (ours[:-1], ours + b"\x00", b"\x12" + ours[1:], ours[:8]):
        with pytest.raises(InvalidArgument):
            FLAT.decode(bad)


def test_a_layout_is_cached_the_second_time_its_size_comes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_tensor_read, "ADMIT_FIRST", False)
    counted = walks(monkeypatch)
    for _ in range(3):
        read_tensors(memoryview(TWO))
    assert len(counted) == 2 and list(_tensor_read._layouts) == [key(TWO)]
