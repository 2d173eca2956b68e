"""Merging a batch's inputs and splitting its outputs back (batch_tensors.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncinfer.errors import Internal
from asyncinfer.inference.scheduling.batch_tensors import merge, split


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=10), st.integers(1, 4))
def test_split_of_merge_gives_each_request_its_own_rows(sizes: list[int], width: int) -> None:
    requests = [
        {
            "a": np.full((n, width), i, np.int32),
            "b": np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 100 * i,
        }
        for i, n in enumerate(sizes)
    ]
    merged, counted = merge(["a", "b"], requests)
    assert counted == sizes
    assert merged["a"].shape == (sum(sizes), width)
    # A model that computes row-wise: outputs are functions of the merged inputs' rows.
    outputs = {"y": merged["a"] * 3, "z": merged["b"][:, :1]}
    parts = split("m", outputs, counted)
    assert len(parts) == len(requests)
    for inputs, part in zip(requests, parts, strict=True):
        np.testing.assert_array_equal(part["y"], inputs["a"] * 3)
        np.testing.assert_array_equal(part["z"], inputs["b"][:, :1])


def test_split_rejects_an_output_without_the_batch_dimension() -> None:
    with pytest.raises(Internal, match=r"model 'm'.*output 'y'.*batch of 3"):
        split("m", {"y": np.zeros((2, 4))}, [1, 2])
