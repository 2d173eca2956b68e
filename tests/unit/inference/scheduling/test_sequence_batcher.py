"""The sequence batcher on its own: correlation IDs, control inputs, slot pinning, batches of at
most one request per sequence, order within a sequence, stop()."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from google.protobuf import text_format

from asyncinfer.errors import Internal, InvalidArgument, Unavailable
from asyncinfer.inference.python_model import Request, Response, Tensor
from asyncinfer.inference.scheduling.sequence_batcher import SequenceBatcher
from asyncinfer.inference.scheduling.sequence_policy import SequencePolicy, correlation_id
from asyncinfer.inference.statistics import ModelStats
from asyncinfer.pb.inference.model_config_pb2 import ModelConfig

CONFIG = """
name: "seq"
max_batch_size: 4
sequence_batching {{
  {strategy}
  control_input [
    {{ name: "START" control [ {{ kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] }} ] }},
    {{ name: "END" control [ {{ kind: CONTROL_SEQUENCE_END fp32_false_true: [ 0, 1 ] }} ] }},
    {{ name: "READY"
       control [ {{ kind: CONTROL_SEQUENCE_READY bool_false_true: [ false, true ] }} ] }},
    {{ name: "CORRID" control [ {{ kind: CONTROL_SEQUENCE_CORRID data_type: {corrid} }} ] }}
  ]
}}
input [ {{ name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
instance_group [ {{ count: 2 }} ]
"""


def _config(strategy: str = "direct { }", corrid: str = "TYPE_UINT64") -> ModelConfig:
    return text_format.Parse(CONFIG.format(strategy=strategy, corrid=corrid), ModelConfig())


class RecordingBackend:
    """Two instances that record what ran where, and echo INPUT."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[tuple[int, list[Request]]] = []
        self.delay = delay

    @property
    def instance_count(self) -> int:
        return 2

    async def execute_on(self, index: int, requests: list[Request]) -> list[Response]:
        self.batches.append((index, requests))
        await asyncio.sleep(self.delay)
        return [Response([Tensor("OUTPUT", _array(r, "INPUT"))]) for r in requests]


def _array(request: Request, name: str) -> np.ndarray:
    tensor = request.input(name)
    assert tensor is not None, f"the request has no input {name}"
    return tensor.as_numpy()


def _request(sequence_id: int | str, value: int, *, start: bool = False, end: bool = False):  # type: ignore[no-untyped-def]
    parameters = {"sequence_id": sequence_id, "sequence_start": start, "sequence_end": end}
    return Request({"INPUT": np.array([[value]], np.int32)}, parameters=parameters)


@pytest.mark.parametrize("value", [None, 0, "", True, 1.5])
def test_missing_or_bad_correlation_ids(value: object) -> None:
    parameters = {} if value is None else {"sequence_id": value}
    with pytest.raises(InvalidArgument, match="model 'seq'"):
        correlation_id(parameters, "seq")


def test_good_correlation_ids() -> None:
    assert correlation_id({"sequence_id": 2**64 - 1}, "seq") == 2**64 - 1
    assert correlation_id({"sequence_id": "abc"}, "seq") == "abc"
    assert correlation_id({"sequence_id": -1}, "seq") == 2**64 - 1  # int64 carrying a uint64


async def test_controls_and_pinning() -> None:
    backend = RecordingBackend()
    batcher = SequenceBatcher(SequencePolicy.from_config(_config()), backend, ModelStats())
    await batcher.start()
    try:
        await batcher.submit(_request(5, 1, start=True))
        await batcher.submit(_request(5, 2))
        await batcher.submit(_request(5, 3, end=True))
    finally:
        await batcher.stop()
    instances = {index for index, _ in backend.batches}
    assert len(instances) == 1  # one sequence, one instance
    first, last = backend.batches[0][1][0], backend.batches[-1][1][0]
    assert _array(first, "START").tolist() == [[1]]
    assert _array(first, "START").dtype == np.int32
    assert _array(first, "END").tolist() == [[0.0]]
    assert _array(last, "END").tolist() == [[1.0]]
    assert _array(last, "READY").dtype == np.bool_
    assert _array(last, "CORRID").tolist() == [[5]]
    assert _array(last, "CORRID").dtype == np.uint64


async def test_string_corrid_is_bytes_and_numeric_corrid_refuses_strings() -> None:
    backend = RecordingBackend()
    batcher = SequenceBatcher(
        SequencePolicy.from_config(_config(corrid="TYPE_STRING")), backend, ModelStats()
    )
    await batcher.start()
    try:
        await batcher.submit(_request("s-1", 1, start=True, end=True))
    finally:
        await batcher.stop()
    assert _array(backend.batches[0][1][0], "CORRID").tolist() == [[b"s-1"]]
    numeric = SequenceBatcher(
        SequencePolicy.from_config(_config()), RecordingBackend(), ModelStats()
    )
    with pytest.raises(InvalidArgument, match="CORRID control input is UINT64"):
        await numeric.submit(_request("s-1", 1, start=True))


async def test_oldest_batches_several_sequences_one_request_each_in_order() -> None:
    backend = RecordingBackend(delay=0.01)
    config = _config("oldest { max_candidate_sequences: 16 max_queue_delay_microseconds: 20000 }")
    stats = ModelStats()
    batcher = SequenceBatcher(SequencePolicy.from_config(config), backend, stats)
    await batcher.start()
    try:

        async def sequence(sequence_id: int) -> list[int]:
            outputs = []
            for step in range(3):
                request = _request(sequence_id, sequence_id * 10 + step, start=step == 0,
                                   end=step == 2)  # fmt: skip
                response = await batcher.submit(request)
                outputs.append(int(response.outputs()["OUTPUT"][0, 0]))
            return outputs

        results = await asyncio.gather(*(sequence(i) for i in range(1, 9)))
    finally:
        await batcher.stop()
    assert results == [[i * 10, i * 10 + 1, i * 10 + 2] for i in range(1, 9)]
    assert any(len(batch) > 1 for _, batch in backend.batches)
    for _, batch in backend.batches:
        ids = [r.parameters["sequence_id"] for r in batch]
        assert len(ids) == len(set(ids)) and len(batch) <= 4
    assert sum(stats.batches[size].compute_infer.count for size in stats.batches) == len(
        backend.batches
    )


def _with_backlog(bound: int) -> ModelConfig:
    config = _config()
    config.parameters["max_sequence_backlog"].string_value = str(bound)
    return config


async def test_new_sequences_wait_in_a_bounded_backlog_for_a_free_slot() -> None:
    batcher = SequenceBatcher(
        SequencePolicy.from_config(_with_backlog(1)), RecordingBackend(), ModelStats()
    )  # 2 x 4 slots, one sequence may wait
    await batcher.start()
    try:
        for sequence_id in range(1, 9):
            await batcher.submit(_request(sequence_id, 0, start=True))
        waiting = asyncio.ensure_future(batcher.submit(_request(99, 5, start=True)))
        await asyncio.sleep(0.05)
        assert not waiting.done() and batcher.statistics()["backlog"] == 1
        with pytest.raises(Unavailable, match=r"all 8 sequence slots .* and 1 sequences already"):
            await batcher.submit(_request(100, 0, start=True))
        await batcher.submit(_request(3, 0, end=True))  # frees a slot: 99 takes it
        assert (await asyncio.wait_for(waiting, 5)).outputs()["OUTPUT"].tolist() == [[5]]
        assert batcher.statistics()["slots_in_use"] == 8
        assert batcher.statistics()["backlog"] == 0
    finally:
        await batcher.stop()


async def test_a_backlog_of_zero_refuses_at_once() -> None:
    batcher = SequenceBatcher(
        SequencePolicy.from_config(_with_backlog(0)), RecordingBackend(), ModelStats()
    )
    await batcher.start()
    try:
        for sequence_id in range(1, 9):
            await batcher.submit(_request(sequence_id, 0, start=True))
        with pytest.raises(Unavailable, match="max_sequence_backlog"):
            await batcher.submit(_request(99, 0, start=True))
    finally:
        await batcher.stop()


async def test_stop_fails_waiting_requests() -> None:
    backend = RecordingBackend(delay=10)
    batcher = SequenceBatcher(SequencePolicy.from_config(_config()), backend, ModelStats())
    await batcher.start()
    first = asyncio.ensure_future(batcher.submit(_request(1, 0, start=True)))
    await asyncio.sleep(0.05)
    second = asyncio.ensure_future(batcher.submit(_request(1, 1)))
    await asyncio.sleep(0.05)
    await batcher.stop()
    for waiting in (first, second):  # one ran, one waited: both fail, neither hangs
        with pytest.raises(Unavailable, match="unloaded"):
            await waiting


@pytest.mark.parametrize(
    "strategy",
    ["direct { minimum_slot_utilization: 0.5 }", "direct { } iterative_sequence: true"],
)
def test_unimplemented_settings_fail_the_load(strategy: str) -> None:
    with pytest.raises(InvalidArgument, match=r"failed to load .seq., sequence_batching .* not"):
        SequenceBatcher(
            SequencePolicy.from_config(_config(strategy)), RecordingBackend(), ModelStats()
        )


async def test_oldest_preferred_size_goes_without_waiting_out_the_delay() -> None:
    backend = RecordingBackend()
    config = _config(
        "oldest { max_candidate_sequences: 8 preferred_batch_size: [ 2 ] "
        "max_queue_delay_microseconds: 30000000 }"
    )
    batcher = SequenceBatcher(SequencePolicy.from_config(config), backend, ModelStats())
    await batcher.start()
    try:
        # Four sequences spread over the two instances, two each: each instance holds a
        # preferred-size batch at once.
        results = await asyncio.wait_for(
            asyncio.gather(
                batcher.submit(_request(1, 1, start=True, end=True)),
                batcher.submit(_request(2, 2, start=True, end=True)),
                batcher.submit(_request(3, 3, start=True, end=True)),
                batcher.submit(_request(4, 4, start=True, end=True)),
            ),
            10,  # far below the 30 s queue delay: only preferred batches can finish in time
        )
    finally:
        await batcher.stop()
    assert [int(r.outputs()["OUTPUT"][0, 0]) for r in results] == [1, 2, 3, 4]
    assert sorted(len(batch) for _, batch in backend.batches) == [2, 2]


async def test_submit_after_stop_is_refused() -> None:
    batcher = SequenceBatcher(
        SequencePolicy.from_config(_config()), RecordingBackend(), ModelStats()
    )
    await batcher.start()
    await batcher.stop()
    with pytest.raises(Unavailable, match="model 'seq' is being unloaded"):
        await asyncio.wait_for(batcher.submit(_request(1, 0, start=True)), 5)


class MiscountingBackend(RecordingBackend):
    """Answers one response too many: the batcher must fail the batch, not its worker."""

    async def execute_on(self, index: int, requests: list[Request]) -> list[Response]:
        responses = await super().execute_on(index, requests)
        return [*responses, responses[0]] if len(self.batches) == 1 else responses


async def test_a_wrong_response_count_fails_the_batch_and_the_worker_goes_on() -> None:
    batcher = SequenceBatcher(
        SequencePolicy.from_config(_config()), MiscountingBackend(), ModelStats()
    )
    await batcher.start()
    try:
        with pytest.raises(Internal, match="model 'seq' returned 2 responses for a batch of 1"):
            await asyncio.wait_for(batcher.submit(_request(1, 5, start=True)), 5)
        response = await asyncio.wait_for(batcher.submit(_request(1, 6, end=True)), 5)
        assert response.outputs()["OUTPUT"].tolist() == [[6]]
    finally:
        await batcher.stop()


async def test_a_failed_runner_refuses_new_requests() -> None:
    batcher = SequenceBatcher(
        SequencePolicy.from_config(_config()), RecordingBackend(delay=10), ModelStats()
    )
    running = asyncio.ensure_future(batcher.submit(_request(1, 0, start=True)))
    batcher._idle = None  # type: ignore[assignment]  # the reaper's first step raises TypeError
    await batcher.start()
    try:
        assert batcher._runner is not None
        await asyncio.wait_for(asyncio.shield(batcher._runner), 5)  # ends, logged, no raise
        with pytest.raises((Unavailable, Internal)):  # cancelled mid-batch, or failed queued
            await asyncio.wait_for(running, 5)
        with pytest.raises(Unavailable, match="is being unloaded"):
            await batcher.submit(_request(2, 0, start=True))
    finally:
        await batcher.stop()
