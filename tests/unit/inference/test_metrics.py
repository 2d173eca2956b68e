"""InferenceCollector's own families: the dynamic batcher's queue depth and process-instance
restarts, read from a real repository of python models."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator

import numpy as np
import pytest

from asyncinfer.errors import Unavailable
from asyncinfer.inference.inprocess import ModelCaller
from asyncinfer.inference.metrics import InferenceCollector
from asyncinfer.inference.repository.repository import ModelRepository

CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: {max_batch_size}
{extra}
input [ {{ name: "IN" data_type: TYPE_INT32 dims: [ -1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_INT32 dims: [ -1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
"""

MODEL = """
import os
from asyncinfer.inference.python_model import Response, Tensor


class Model:
    def execute(self, requests):
        responses = []
        for request in requests:
            values = request.input("IN").as_numpy()
            if values.ravel()[0] == -1:
                os._exit(7)  # a crash in the middle of a request (process instances only)
            responses.append(Response([Tensor("OUT", values * 2)]))
        return responses
"""

# Two requests of one item never fill a batch of 8, so they wait out the (long) queue delay.
QUEUED = "dynamic_batching { max_queue_delay_microseconds: 30000000 }"
PROCESS = 'parameters { key: "instance_kind" value { string_value: "process" } }'


def write_model(root: pathlib.Path, name: str, max_batch_size: int, extra: str) -> None:
    (root / name / "1").mkdir(parents=True)
    config = CONFIG.format(name=name, max_batch_size=max_batch_size, extra=extra)
    (root / name / "config.pbtxt").write_text(config)
    (root / name / "1" / "model.py").write_text(MODEL)


@pytest.fixture
async def repo(tmp_path: pathlib.Path) -> AsyncIterator[ModelRepository]:
    write_model(tmp_path, "queued", 8, QUEUED)
    write_model(tmp_path, "crasher", 0, PROCESS)
    repository = ModelRepository(tmp_path, control_mode="none")
    await repository.start()
    yield repository
    await repository.stop()


def samples(collector: InferenceCollector, family: str) -> dict[tuple[str, ...], float]:
    (found,) = [f for f in collector.collect() if f.name == family]
    return {tuple(s.labels.values()): s.value for s in found.samples}


async def test_queue_depth_counts_the_requests_waiting_in_the_batcher(
    repo: ModelRepository,
) -> None:
    collector = InferenceCollector(repo)
    assert samples(collector, "asyncinfer_inference_queue_depth") == {("queued", "1"): 0}
    caller = ModelCaller(repo)
    calls = [
        asyncio.create_task(caller.infer("queued", {"IN": np.ones((1, 2), np.int32)}))
        for _ in range(2)
    ]
    for _ in range(1000):
        await asyncio.sleep(0)
        if samples(collector, "asyncinfer_inference_queue_depth")[("queued", "1")] == 2:
            break
    assert samples(collector, "asyncinfer_inference_queue_depth") == {("queued", "1"): 2}
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)
    await asyncio.sleep(0)
    assert samples(collector, "asyncinfer_inference_queue_depth") == {("queued", "1"): 0}


async def test_restarts_of_a_process_instance_are_exported(repo: ModelRepository) -> None:
    collector = InferenceCollector(repo)
    ((labels, restarts),) = samples(collector, "asyncinfer_instance_restarts").items()
    assert labels[:2] == ("crasher", "1") and restarts == 0
    caller = ModelCaller(repo)
    with pytest.raises(Unavailable, match="exited"):
        await caller.infer("crasher", {"IN": np.array([-1], np.int32)})
    for _ in range(600):  # the restart begins when the instance's exit is seen
        if samples(collector, "asyncinfer_instance_restarts")[labels] >= 1:
            break
        await asyncio.sleep(0.05)
    assert samples(collector, "asyncinfer_instance_restarts")[labels] == 1
    # Restarted, it serves again.
    out = await caller.infer("crasher", {"IN": np.array([3], np.int32)})
    assert out["OUT"].tolist() == [6]
