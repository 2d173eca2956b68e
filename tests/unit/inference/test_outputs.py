"""The data plane's output stage: requested outputs planned and checked before the model runs,
then each produced array checked, classified, or written to its shared memory."""

from __future__ import annotations

import numpy as np
import pytest

from asyncinfer.datatypes import DATATYPES
from asyncinfer.errors import Internal, InvalidArgument
from asyncinfer.inference.infer_types import RequestedOutput
from asyncinfer.inference.outputs import all_outputs, plan_outputs, respond
from asyncinfer.inference.shared_memory import SharedMemory, ShmSpan
from asyncinfer.signature import Signature, TensorSpec

FP32 = DATATYPES["FP32"]
SIG = Signature(
    "m",
    4,
    {"X": TensorSpec("X", FP32, (3,))},
    {"A": TensorSpec("A", FP32, (3,)), "B": TensorSpec("B", FP32, (3,))},
)
EVERY = all_outputs(SIG)


def test_no_requested_output_means_every_output_in_config_order() -> None:
    assert plan_outputs((), SIG, EVERY) is EVERY
    assert [p.spec.name for p in EVERY] == ["A", "B"]
    plans = plan_outputs([RequestedOutput("B", 2), RequestedOutput("A")], SIG, EVERY)
    assert [(p.spec.name, p.class_count) for p in plans] == [("B", 2), ("A", 0)]


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        ([RequestedOutput("C")], "unexpected inference output 'C' for model 'm'"),
        ([RequestedOutput("A", 0)], r"classification count of output 'A' .* must be >= 1, not 0"),
        (
            [RequestedOutput("A", None, ShmSpan("r", 0, 12)),
             RequestedOutput("B", None, ShmSpan("r", 8, 12))],
            r"bytes \[8, 20\) of shared memory region 'r' overlap those of output 'A' \[0, 12\)",
        ),
    ],
)  # fmt: skip
def test_bad_requested_outputs(requested: list[RequestedOutput], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        plan_outputs(requested, SIG, EVERY)


def test_produced_outputs_are_checked_and_classified() -> None:
    scores = np.array([[0.1, 0.7, 0.2]], np.float32)
    plans = plan_outputs([RequestedOutput("A", 2), RequestedOutput("B")], SIG, EVERY)
    a, b = respond({"A": scores, "B": scores}, plans, SIG, {"A": ["x", "y", "z"]}, 1, None)
    assert (a.datatype, a.data.tolist()) == ("BYTES", [[b"0.700000:1:y", b"0.200000:2:z"]])
    assert b.datatype == "FP32" and b.data is scores and b.shm is None
    with pytest.raises(Internal, match="model 'm' did not produce output 'B'"):
        respond({"A": scores}, plans, SIG, {}, 1, None)
    with pytest.raises(Internal, match=r"with shape \[1, 3\], but its config declares \[2, 3\]"):
        respond({"A": scores, "B": scores}, plans, SIG, {}, 2, None)


def test_an_output_with_a_span_is_written_there_once(shared: SharedMemory) -> None:
    array = np.array([[1.0, 2.0, 3.0]], np.float32)
    plans = plan_outputs([RequestedOutput("A", None, ShmSpan("r", 16, 12))], SIG, EVERY)
    with shared.scope() as scope:
        (placed,) = respond({"A": array}, plans, SIG, {}, 1, scope)
        assert placed.shm == ShmSpan("r", 16, 12) and placed.shape == (1, 3)
        view = np.frombuffer(scope.read(scope.lease(ShmSpan("r", 16, 12))), np.float32)
        np.testing.assert_array_equal(view.reshape(1, 3), array)
        del view
    with pytest.raises(InvalidArgument, match="shared memory is not available on this call"):
        respond({"A": array}, plans, SIG, {}, 1, None)


MANY = 30_000
WIDE = Signature(
    "wide",
    0,
    {"X": TensorSpec("X", FP32, (1,))},
    {f"O{i}": TensorSpec(f"O{i}", FP32, (1,)) for i in range(MANY)},
)


@pytest.mark.timeout(30)  # comparing every pair (450 million) would take many minutes
def test_thirty_thousand_outputs_in_shared_memory_plan_in_one_sweep() -> None:
    requested = [
        RequestedOutput(f"O{i}", None, ShmSpan("r", 4 * (MANY - i), 4)) for i in range(MANY)
    ]
    plans = plan_outputs(requested, WIDE, all_outputs(WIDE))
    assert [p.spec.name for p in plans] == [f"O{i}" for i in range(MANY)]
    requested[MANY // 2] = RequestedOutput(f"O{MANY // 2}", None, ShmSpan("r", 4 * 7 + 2, 4))
    with pytest.raises(InvalidArgument) as info:
        plan_outputs(requested, WIDE, all_outputs(WIDE))
    # O{MANY - 7} holds [28, 32) and O{MANY - 8} [32, 36): the moved span [30, 34) meets both.
    assert (
        f"output 'O{MANY - 7}'" in info.value.message
        or f"output 'O{MANY - 8}'" in info.value.message
    )
    assert f"output 'O{MANY // 2}'" in info.value.message
    # Spans in other regions, or empty ones, never overlap.
    other = [RequestedOutput(f"O{i}", None, ShmSpan(f"r{i}", 0, 4)) for i in range(MANY)]
    assert len(plan_outputs(other, WIDE, all_outputs(WIDE))) == MANY
