"""check_inputs: numpy inputs of in-process calls checked like a request from the wire."""

from __future__ import annotations

import numpy as np
import pytest

from asyncinfer.errors import InvalidArgument
from asyncinfer.inference.inprocess import check_inputs
from asyncinfer.inference.modelconfig import parse_pbtxt, signature

SIMPLE = signature(parse_pbtxt("""
    max_batch_size: 8
    input [ { name: "A" data_type: TYPE_INT32 dims: [ 4 ] },
            { name: "B" data_type: TYPE_FP32 dims: [ -1 ] } ]
    output [ { name: "C" data_type: TYPE_INT32 dims: [ 4 ] } ]
""", model="m"))  # fmt: skip


def test_good_inputs_give_their_batch_size() -> None:
    a, b = np.zeros((3, 4), np.int32), np.zeros((3, 7), np.float32)
    assert check_inputs({"A": a, "B": b}, SIMPLE) == 3


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"A": np.zeros((1, 4), np.int32)}, r"missing: \['B'\]"),
        ({"A": np.zeros((1, 4), np.int32), "B": np.zeros((1, 2), np.float32), "X": 1},
         r"unknown: \['X'\]"),
        ({"A": np.zeros((1, 4), np.int64), "B": np.zeros((1, 2), np.float32)},
         "input 'A' for model 'm': expected datatype INT32, got INT64"),
        ({"A": np.zeros((1, 5), np.int32), "B": np.zeros((1, 2), np.float32)},
         r"unexpected shape \[1, 5\], expected \[-1, 4\]"),
        ({"A": np.zeros((9, 4), np.int32), "B": np.zeros((9, 2), np.float32)},
         r"batch size 9 is outside 1..8"),
        ({"A": np.zeros((2, 4), np.int32), "B": np.zeros((3, 2), np.float32)},
         r"same batch size, got \[2, 3\]"),
        ({"A": [[1, 2, 3, 4]], "B": np.zeros((1, 2), np.float32)}, "must be a numpy array"),
    ],
)  # fmt: skip
def test_bad_inputs_say_what_was_expected(inputs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        check_inputs(inputs, SIMPLE)
