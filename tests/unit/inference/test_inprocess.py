"""check_inputs: numpy inputs of in-process calls checked like a request from the wire."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from asyncinfer.errors import InvalidArgument
from asyncinfer.inference.inprocess import check_inputs, infer_arrays
from asyncinfer.inference.repository.model_config import parse_pbtxt, signature
from asyncinfer.inference.repository.repository import ModelRepository

SIMPLE_MODEL = (
    pathlib.Path(__file__).parents[3] / "examples" / "model_repository_explicit" / "simple"
)

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


async def test_in_process_calls_are_counted_like_requests_from_the_wire() -> None:
    repository = ModelRepository(SIMPLE_MODEL.parent, control_mode="explicit")
    await repository.start()
    try:
        await repository.load("simple")
        model = repository.get("simple")
        a = np.arange(48, dtype=np.int32).reshape(3, 16)
        outputs = await infer_arrays(model, {"INPUT0": a, "INPUT1": a}, outputs=["OUTPUT0"])
        assert list(outputs) == ["OUTPUT0"] and outputs["OUTPUT0"].shape == (3, 16)
        with pytest.raises(InvalidArgument):
            await infer_arrays(model, {"INPUT0": a, "INPUT1": a[:2]})
        stats = model.stats
        assert (stats.success.count, stats.fail.count, stats.pending) == (1, 1, 0)
        assert (stats.inference_count, stats.execution_count, list(stats.batches)) == (3, 1, [3])
        # Every duration of the successful call was counted once.
        counts = [stats.queue.count, stats.compute_input.count, stats.compute_infer.count]
        assert counts == [1, 1, 1] and stats.compute_output.count == 1
    finally:
        await repository.stop()
