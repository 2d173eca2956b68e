"""The one validator: numpy inputs of in-process calls and engines checked like a request from
the wire, with Triton's texts; outputs checked against the config."""

from __future__ import annotations

import numpy as np
import pytest

from asyncinfer.errors import Internal, InvalidArgument
from asyncinfer.inference.repository.model_config import parse_pbtxt, signature
from asyncinfer.signature import Signature

SIMPLE = signature(parse_pbtxt("""
    max_batch_size: 8
    input [ { name: "A" data_type: TYPE_INT32 dims: [ 4 ] },
            { name: "B" data_type: TYPE_FP32 dims: [ -1 ] } ]
    output [ { name: "C" data_type: TYPE_INT32 dims: [ 4 ] } ]
""", model="m"))  # fmt: skip


def test_good_inputs_give_their_batch_size() -> None:
    a, b = np.zeros((3, 4), np.int32), np.zeros((3, 7), np.float32)
    assert SIMPLE.check_arrays({"A": a, "B": b}) == 3
    assert SIMPLE.check_arrays({"B": b, "A": a}) == 3  # any order


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"A": np.zeros((1, 4), np.int32)},
         r"expected 2 inputs but got 1 inputs for model 'm'. Got input\(s\) \['A'\], but "
         r"missing required input\(s\) \['B'\]"),
        ({"A": np.zeros((1, 4), np.int32), "B": np.zeros((1, 2), np.float32),
          "X": np.zeros(1, np.int8)},
         r"unexpected inference input 'X' for model 'm'; its inputs are \['A', 'B'\]"),
        ({"A": np.zeros((1, 4), np.int64), "B": np.zeros((1, 2), np.float32)},
         "inference input 'A' data-type is 'INT64', but model 'm' expects 'INT32'"),
        ({"A": np.zeros((1, 5), np.int32), "B": np.zeros((1, 2), np.float32)},
         r"unexpected shape for input 'A' for model 'm'. Expected \[-1, 4\], got \[1, 5\]"),
        ({"A": np.zeros((9, 4), np.int32), "B": np.zeros((9, 2), np.float32)},
         r"inference request batch-size must be <= 8 for 'm'"),
        ({"A": np.zeros((0, 4), np.int32), "B": np.zeros((0, 2), np.float32)},
         r"input 'A' for model 'm' has batch size 0; it must be 1..8"),
        ({"A": np.zeros((2, 4), np.int32), "B": np.zeros((3, 2), np.float32)},
         r"same batch size, got \[2, 3\]"),
        ({"A": [[1, 2, 3, 4]], "B": np.zeros((1, 2), np.float32)}, "must be a numpy array"),
        ({"A": np.zeros((1, 4), ">i4"), "B": np.zeros((1, 2), np.float32)},
         "has numpy dtype >i4; INT32 inputs are int32 arrays"),
        ({"A": np.zeros((1, 4), np.complex64), "B": np.zeros((1, 2), np.float32)},
         "has numpy dtype complex64, which no datatype has"),
    ],
)  # fmt: skip
def test_bad_inputs_say_what_was_expected(inputs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        SIMPLE.check_arrays(inputs)


def test_byte_sizes_and_element_counts() -> None:
    SIMPLE.check_byte_size("A", (2, 4), 32)
    with pytest.raises(InvalidArgument, match="unexpected total byte size 31 for input 'A'"):
        SIMPLE.check_byte_size("A", (2, 4), 31)
    with pytest.raises(InvalidArgument, match=r"elements 7 in data of input 'A'.*expecting 8"):
        SIMPLE.check_element_count("A", (2, 4), 7, source="data")


def test_outputs_are_checked_against_the_config() -> None:
    assert [s.name for s in SIMPLE.check_requested(["C"])] == ["C"]
    with pytest.raises(InvalidArgument, match="unexpected inference output 'D' for model 'm'"):
        SIMPLE.check_requested(["D"])
    good = np.zeros((2, 4), np.int32)
    assert SIMPLE.check_output("C", good, 2) is good
    for bad, message in [
        ([0] * 4, "returned output 'C' as list, not a numpy array"),
        (np.zeros((2, 4), np.float32), "returned output 'C' as FP32, but its config declares"),
        (np.zeros((3, 4), np.int32), r"with shape \[3, 4\], but its config declares \[2, 4\]"),
    ]:
        with pytest.raises(Internal, match=message):
            SIMPLE.check_output("C", bad, 2)


def test_an_engines_bindings_make_a_signature_of_patterns() -> None:
    sig = Signature.of_tensors("e", [("x", "FP32", (-1, 4))], [("y", "FP32", (-1,))])
    assert sig.max_batch_size == 0 and sig.shapes == {"x": (-1, 4)}
    assert sig.check_arrays({"x": np.zeros((100, 4), np.float32)}) == 1
    with pytest.raises(ValueError, match="tensor 'x' has datatype 'FLOAT'"):
        Signature.of_tensors("e", [("x", "FLOAT", (1,))], [])
