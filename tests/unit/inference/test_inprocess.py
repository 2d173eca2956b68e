"""ModelCaller, the in-process front end: a call is checked, scheduled and counted like a
request from the wire, and a decoupled model's responses stream one by one."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from asyncinfer.errors import InvalidArgument
from asyncinfer.inference.inprocess import ModelCaller
from asyncinfer.inference.repository import ModelRepository

EXAMPLES = pathlib.Path(__file__).parents[3] / "examples"


async def test_in_process_calls_are_counted_like_requests_from_the_wire() -> None:
    repository = ModelRepository(EXAMPLES / "model_repository_explicit", control_mode="explicit")
    await repository.start()
    try:
        await repository.load("simple")
        caller = ModelCaller(repository)
        a = np.arange(48, dtype=np.int32).reshape(3, 16)
        outputs = await caller.infer("simple", {"INPUT0": a, "INPUT1": a}, outputs=["OUTPUT0"])
        assert list(outputs) == ["OUTPUT0"] and outputs["OUTPUT0"].shape == (3, 16)
        with pytest.raises(InvalidArgument, match=r"same batch size, got \[2, 3\]"):
            await caller.infer("simple", {"INPUT0": a, "INPUT1": a[:2]})
        stats = repository.get("simple").stats
        assert (stats.success.count, stats.fail.count, stats.pending) == (1, 1, 0)
        assert (stats.inference_count, stats.execution_count, list(stats.batches)) == (3, 1, [3])
        # Every duration of the successful call was counted once.
        counts = [stats.queue.count, stats.compute_input.count, stats.compute_infer.count]
        assert counts == [1, 1, 1] and stats.compute_output.count == 1
    finally:
        await repository.stop()


async def test_a_decoupled_model_streams_its_responses_in_process() -> None:
    repository = ModelRepository(
        EXAMPLES / "model_repository", control_mode="explicit", load_models=["repeat_int32"]
    )
    await repository.start()
    try:
        caller = ModelCaller(repository)
        inputs = {
            "IN": np.array([4, 5, 6], np.int32),
            "DELAY": np.zeros(3, np.uint32),
            "WAIT": np.zeros(1, np.uint32),
        }
        seen = [o["OUT"].tolist() async for o in caller.stream("repeat_int32", inputs)]
        assert seen == [[4], [5], [6]]
        stats = repository.get("repeat_int32").stats
        assert (stats.success.count, stats.execution_count) == (1, 1)
        with pytest.raises(InvalidArgument, match="data-type is 'FP32'"):
            async for _ in caller.stream("repeat_int32", {**inputs, "IN": np.zeros(3, "f4")}):
                pass
    finally:
        await repository.stop()
