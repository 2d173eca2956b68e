"""Merging the inputs of a batch of requests into one set of arrays, and splitting outputs back.

A backend that runs a whole batch in one call (ONNX Runtime) concatenates each input along the
batch dimension and cuts every output at the same offsets, so request ``i`` gets exactly the
rows it sent. The dynamic batcher only groups requests whose non-batch shapes match.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ...errors import Internal

__all__ = ["merge", "same_shapes", "split"]

Arrays = dict[str, npt.NDArray[Any]]


def merge(
    names: Sequence[str],
    requests: Sequence[Mapping[str, npt.NDArray[Any]]],
    sizes: Sequence[int] | None = None,
) -> tuple[Arrays, list[int]]:
    """Each input in ``names`` concatenated over ``requests``, and each request's row count
    (``sizes`` when the caller knows them: a ragged or batch input says nothing of them)."""
    if sizes is not None:
        sizes = list(sizes)
    else:
        sizes = [int(inputs[names[0]].shape[0]) for inputs in requests] if names else []
    if len(requests) == 1:
        return {name: requests[0][name] for name in names}, sizes
    merged = {name: np.concatenate([inputs[name] for inputs in requests]) for name in names}
    return merged, sizes


def same_shapes(requests: Sequence[Mapping[str, npt.NDArray[Any]]]) -> list[list[int]]:
    """The indices of ``requests`` grouped by their inputs' names and non-batch shapes (the
    requests one merged call can take), each group in order, groups by first appearance."""
    groups: dict[tuple[tuple[str, tuple[int, ...]], ...], list[int]] = {}
    for index, inputs in enumerate(requests):
        key = tuple((name, array.shape[1:]) for name, array in sorted(inputs.items()))
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def split(
    model: str, outputs: Mapping[str, npt.NDArray[Any]], sizes: Sequence[int]
) -> list[Arrays]:
    """``outputs`` cut into one dict per request, ``sizes[i]`` rows each (views, no copy).

    Internal naming the model and output when an output's batch extent is not the total.
    """
    total = sum(sizes)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise Internal(
                f"model '{model}' returned output '{name}' with shape {list(array.shape)} for a "
                f"batch of {total}; its first dimension must be the batch"
            )
    if len(sizes) == 1:
        return [dict(outputs)]
    bounds = np.cumsum([0, *sizes])
    return [
        {name: array[start:end] for name, array in outputs.items()}
        for start, end in itertools.pairwise(bounds)
    ]
