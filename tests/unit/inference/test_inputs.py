"""The data plane's input stage: declarations checked before any data is read, then raw bytes
(read-only views), elements given one by one, and in-process arrays made the model's arrays."""

from __future__ import annotations

import numpy as np
import pytest

from asyncinfer.datatypes import DATATYPES
from asyncinfer.errors import InvalidArgument
from asyncinfer.inference.infer_types import ElementValues, InferInput, InferRequest
from asyncinfer.inference.inputs import read_inputs, read_planned
from asyncinfer.inference.outputs import all_outputs
from asyncinfer.inference.plans import PlanCache
from asyncinfer.inference.shared_memory import ShmSpan
from asyncinfer.signature import Signature, TensorSpec


def _sig(datatype: str, dims: tuple[int, ...] = (-1,), max_batch_size: int = 0) -> Signature:
    spec = TensorSpec("X", DATATYPES[datatype], dims)
    return Signature("m", max_batch_size, {"X": spec}, {"Y": TensorSpec("Y", spec.datatype, dims)})


def _one(datatype: str, shape: tuple[int, ...], data: object) -> InferRequest:
    return InferRequest([InferInput("X", datatype, shape, data)])  # type: ignore[arg-type]


def _read(request: InferRequest, sig: Signature, planned: bool) -> dict[str, np.ndarray]:
    """The request's arrays, read unplanned or through its declaration's plan (the data
    plane's path for a declaration it has met before): the same arrays, the same texts."""
    if not planned:
        return read_inputs(request, sig)[0]
    plan = PlanCache(sig, all_outputs(sig)).plan(request.inputs, request.outputs, None)
    return read_planned(request, sig, plan.reads)


@pytest.mark.parametrize("datatype", [d for d in DATATYPES if d != "BYTES"])
def test_raw_inputs_of_every_datatype_are_read_only_views(datatype: str) -> None:
    array = (np.arange(6) % 2).astype(DATATYPES[datatype].dtype).reshape(2, 3)
    arrays, batch = read_inputs(_one(datatype, (2, 3), array.tobytes()), _sig(datatype, (-1, 3)))
    np.testing.assert_array_equal(arrays["X"], array)
    assert arrays["X"].dtype == array.dtype and not arrays["X"].flags.writeable
    assert batch == 1


@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        ("BOOL", [True, False]),
        ("INT8", [-128, 127]),
        ("INT16", [-5, 5]),
        ("INT32", [1, -2]),
        ("INT64", [2**40, -1]),
        ("UINT8", [0, 255]),
        ("UINT16", [1, 65535]),
        ("UINT32", [1, 2**32 - 1]),
        ("UINT64", [2**64 - 1, 0]),
        ("FP32", [1.5, -2.0]),
        ("FP64", [1e300, 0.25]),
        ("BYTES", [b"a\x00", b""]),
    ],
)
@pytest.mark.parametrize("planned", [False, True])
def test_elements_of_every_datatype(datatype: str, values: list[object], planned: bool) -> None:
    request = _one(datatype, (2,), ElementValues(values, "contents"))
    arrays = _read(request, _sig(datatype), planned)
    assert list(arrays["X"]) == values and arrays["X"].dtype == DATATYPES[datatype].dtype


@pytest.mark.parametrize(
    ("datatype", "values", "message"),
    [
        ("INT8", [300], "int_contents of input 'X' for model 'm' holds values outside the range"),
        ("UINT8", [-1], "holds values outside the range of UINT8"),
        ("INT64", [2**63], "holds values outside the range of INT64"),
        ("UINT64", [2**64], "holds values that are not UINT64"),
        ("INT32", [1.5], "holds values that are not INT32"),
        ("INT32", ["1"], "holds values that are not INT32"),
        ("INT32", [1, 2], r"unexpected number of elements 2 in int_contents of input 'X'"),
        ("INT32", [True], None),  # a bool is an int to numpy: the checked path reads it as 1
        ("FP32", [1], None),  # an int is a number for a float input
        ("FP32", ["1.5"], "holds values that are not FP32"),
        ("BOOL", [1], None),
    ],
)
@pytest.mark.parametrize("planned", [False, True])
def test_bad_elements(
    datatype: str, values: list[object], message: str | None, planned: bool
) -> None:
    request = _one(datatype, (1,), ElementValues(values, "int_contents"))
    if message is None:  # accepted by the checked path: the plan's reads agree
        arrays = _read(request, _sig(datatype, (1,)), planned)
        assert arrays["X"].tolist() == np.array(values).astype(DATATYPES[datatype].dtype).tolist()
        return
    with pytest.raises(InvalidArgument, match=message):
        _read(request, _sig(datatype, (1,)), planned)


def test_declarations_are_checked_before_any_data_is_read() -> None:
    # Wrong shape and wrong byte size: Triton reports the shape.
    with pytest.raises(InvalidArgument, match="unexpected shape for input 'X'"):
        read_inputs(_one("INT32", (2, 2), b"\x00"), _sig("INT32", (-1, 3)))
    with pytest.raises(InvalidArgument, match="unexpected total byte size 1 for input 'X'"):
        read_inputs(_one("INT32", (2, 3), b"\x00"), _sig("INT32", (-1, 3)))


def test_an_array_is_used_as_it_is_and_shared_memory_needs_a_scope() -> None:
    array = np.arange(3, dtype=np.int32)
    arrays, _ = read_inputs(InferRequest([InferInput.of("X", array)]), _sig("INT32"))
    assert arrays["X"] is array
    with pytest.raises(InvalidArgument, match="shared memory is not available on this call"):
        read_inputs(_one("INT32", (3,), ShmSpan("r", 0, 12)), _sig("INT32"))
