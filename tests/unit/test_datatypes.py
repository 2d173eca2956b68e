"""The datatypes module's rules: shape_fits (the one "-1 matches any extent" rule, against a
plain per-dimension reading), datatype_of, and the BYTES layout round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncinfer.datatypes import datatype_of, deserialize_bytes, serialize_bytes, shape_fits
from asyncinfer.errors import InvalidArgument

extents = st.lists(st.sampled_from([-1, 1, 2, 3]), max_size=4).map(tuple)


@given(shape=extents, pattern=extents)
def test_shape_fits_is_the_per_dimension_rule(
    shape: tuple[int, ...], pattern: tuple[int, ...]
) -> None:
    same_rank = len(shape) == len(pattern)
    one_way = same_rank and all(p in (-1, s) for s, p in zip(shape, pattern, strict=True))
    both_ways = same_rank and all(
        -1 in (s, p) or s == p for s, p in zip(shape, pattern, strict=True)
    )
    assert shape_fits(shape, pattern) == one_way
    assert shape_fits(shape, pattern, wildcards_in_shape=True) == both_ways


def test_examples() -> None:
    assert shape_fits((8, 16), (-1, 16))
    assert not shape_fits((8, 15), (-1, 16))
    assert not shape_fits((-1, 16), (8, 16))
    assert shape_fits((-1, 16), (8, 16), wildcards_in_shape=True)
    assert shape_fits((), ())
    assert not shape_fits((1,), ())


@given(st.lists(st.binary(max_size=40), max_size=30))
def test_bytes_round_trip(items: list[bytes]) -> None:
    array = np.empty(len(items), dtype=np.object_)
    array[:] = items
    buffer = serialize_bytes(array)
    assert list(deserialize_bytes(buffer, len(items), what="t")) == items


@given(st.binary(min_size=1, max_size=3))
def test_truncated_bytes_prefix_is_invalid(tail: bytes) -> None:
    with pytest.raises(InvalidArgument, match=r"BYTES element 1 is truncated, expecting"):
        deserialize_bytes(serialize_bytes(np.array([b"ab"], dtype=object)) + tail, 2, what="t")


def test_datatype_of_names_what_has_no_datatype() -> None:
    assert datatype_of(np.float32) == "FP32" and datatype_of(np.object_) == "BYTES"
    with pytest.raises(InvalidArgument, match="numpy dtype complex64 has no Triton datatype"):
        datatype_of(np.complex64)
    with pytest.raises(InvalidArgument, match="has no fixed-size Triton datatype"):
        datatype_of(np.object_, fixed_size=True)
