"""The writer's cache of message frames (everything but the data, by names, dtypes and shapes)
is exact: a message is byte for byte what it is with nothing cached."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from asyncinfer import codecs
from asyncinfer.codecs import _tensor_write
from asyncinfer.codecs._tensor_read import read_tensors
from asyncinfer.codecs._tensor_write import clear_cache, write_tensors
from asyncinfer.errors import UsageError

from ...codec_services import Blob

FLAT = codecs.FLATBUFFERS.bind(Blob.DESCRIPTOR)
RAW = codecs.RAW.bind(Blob.DESCRIPTOR)
DTYPES = ["?", "u1", "<u2", ">u4", "<u8", "i1", "<i2", "<i4", ">i8", "<f2", "<f4", ">f8"]


@pytest.fixture(autouse=True)
def _cold_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


def cold(tensors: dict[str, np.ndarray]) -> bytes:
    clear_cache()
    return b"".join(write_tensors(tensors))  # type: ignore[arg-type]  # ndarrays are buffers


def warm(tensors: dict[str, np.ndarray]) -> bytes:
    return b"".join(write_tensors(tensors))  # type: ignore[arg-type]


arrays = st.sampled_from(DTYPES).flatmap(
    lambda dtype: hnp.arrays(
        np.dtype(dtype), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
    )
)
tensor_maps = st.dictionaries(st.text(min_size=1, max_size=6), arrays, max_size=3)


@settings(max_examples=150, deadline=None)
@given(tensor_maps)
def test_a_cached_frame_writes_the_same_bytes(tensors: dict[str, np.ndarray]) -> None:
    expected = cold(tensors)
    write_tensors(tensors)
    # The same names, dtypes and shapes with other data, some of it not contiguous.
    other = {
        name: np.flip(array.copy()) if array.ndim else array.copy()
        for name, array in tensors.items()
    }
    assert warm(tensors) == expected
    assert warm(other) == cold(other)


def test_a_frame_serves_only_the_same_names_dtypes_and_shapes() -> None:
    base = {"x": np.arange(6, dtype="<f4").reshape(2, 3)}
    write_tensors(base)
    for changed in (
        {"y": base["x"]},
        {"x": base["x"].astype("<f8")},
        {"x": base["x"].reshape(3, 2)},
        {"x": base["x"], "z": np.zeros(1, "u1")},
    ):
        before = warm(changed)
        assert before == cold(changed)
        got = read_tensors(memoryview(before))
        assert list(got) == list(changed)
        for name, array in changed.items():
            assert got[name].shape == array.shape and got[name].dtype == array.dtype


def test_scalars_of_non_native_dtypes_keep_their_shape() -> None:
    got = read_tensors(memoryview(warm({"a": np.array(1, ">i4"), "b": np.array(2, "<i4")})))
    assert got["a"].shape == got["b"].shape == ()
    assert int(got["a"]) == 1


def test_refused_values_are_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(UsageError, match="not strings or objects"):
            write_tensors({"s": np.array(["a"])})
        with pytest.raises(UsageError, match="names must not be empty"):
            write_tensors({"": np.zeros(3)})
    assert not _tensor_write._frames


def test_the_cache_is_bounded() -> None:
    for n in range(_tensor_write.CACHE_ENTRIES + 10):
        write_tensors({"x": np.zeros(n, "u1")})
    assert len(_tensor_write._frames) == _tensor_write.CACHE_ENTRIES
    assert (("x", np.dtype("u1"), (0,)),) not in _tensor_write._frames


@settings(max_examples=100, deadline=None)
@given(tensor_maps)
def test_the_codec_writes_the_whole_message_as_the_payload_framing_would(
    tensors: dict[str, np.ndarray],
) -> None:
    payload = cold(tensors)
    for _ in range(2):  # cold, then from the cache
        message = FLAT.encode(tensors)
        assert message == RAW.encode(payload)  # the key and padded length, then the payload
        assert Blob.FromString(message).data == payload
