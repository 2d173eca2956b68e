"""shape_fits: the one "-1 matches any extent" rule, against a plain per-dimension reading."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from asyncinfer.runner import shape_fits

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
