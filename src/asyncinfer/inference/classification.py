"""The classification extension: turn an output into its top-k "value:index[:label]" strings.

A requested output with the ``classification`` parameter (tritonclient's ``class_count``) comes
back as a BYTES tensor: per batch item, the ``class_count`` largest values, best first, each
written as ``value:index`` or ``value:index:label`` when the output has a label file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..datatypes import BYTES
from ..errors import InvalidArgument

__all__ = ["classify", "read_labels"]


def read_labels(data: bytes) -> list[str]:
    """One label per line of a label file's UTF-8 ``data``, line i naming class i."""
    return data.decode("utf-8").splitlines()


def classify(
    array: npt.NDArray[Any],
    class_count: int,
    labels: Sequence[str],
    *,
    batched: bool,
    what: str,
) -> npt.NDArray[np.object_]:
    """Top ``class_count`` entries of each batch item (or of the whole array when unbatched)."""
    if array.dtype.kind not in "biuf" and array.dtype.name != "bfloat16":
        raise InvalidArgument(f"{what}: classification needs a numeric output, not {BYTES}")
    rows = array.reshape(array.shape[0], -1) if batched else array.reshape(1, -1)
    count = min(class_count, rows.shape[1])
    result = np.empty((rows.shape[0], count), dtype=np.object_)
    for row_index, row in enumerate(rows.astype(np.float64)):
        # Stable sort on the negated values: equal scores keep index order, best first.
        best = np.argsort(-row, kind="stable")[:count]
        for rank, index in enumerate(best):
            text = f"{row[index]:f}:{index}"
            if index < len(labels):
                text += f":{labels[index]}"
            result[row_index, rank] = text.encode()
    return result if batched else result.reshape(count)
