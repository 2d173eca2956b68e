"""Sequence models through tritonclient (sync stream, aio stream, unary): TRITON-COMPAT Part A
sequence semantics and Part B.11, the oldest strategy on two instances, and the bad input
cases, after each of which the batcher keeps serving the other sequences."""

from __future__ import annotations

import pathlib
import queue
import re
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException

from asyncinfer.inference.app import build_server

from .inference_servers import ThreadedServer


def _input(module, value: int):  # type: ignore[no-untyped-def]
    tensor = module.InferInput("INPUT", [1, 1], "INT32")
    tensor.set_data_from_numpy(np.array([[value]], np.int32))
    return tensor


def _output(result) -> int:  # type: ignore[no-untyped-def]
    return int(result.as_numpy("OUTPUT").reshape(-1)[0])


@pytest.fixture
def client(url: str) -> Iterator[grpcclient.InferenceServerClient]:
    with grpcclient.InferenceServerClient(url) as client:
        yield client


def _run_unary(client, model: str, sequence_id, values: list[int]) -> list[int]:  # type: ignore[no-untyped-def]
    outputs = []
    for i, value in enumerate(values):
        result = client.infer(
            model,
            [_input(grpcclient, value)],
            sequence_id=sequence_id,
            sequence_start=i == 0,
            sequence_end=i == len(values) - 1,
        )
        outputs.append(_output(result))
    return outputs


@pytest.mark.parametrize("sequence_id", [1001, "text-id"])
def test_simple_sequence_has_no_accumulation_and_takes_both_id_kinds(
    client: grpcclient.InferenceServerClient, sequence_id: int | str
) -> None:
    # OUTPUT = (INPUT + START) * READY; READY is 1 for every real request.
    assert _run_unary(client, "simple_sequence", sequence_id, [5, 6, 7]) == [6, 6, 7]


def test_simple_dyna_sequence_adds_corrid_on_end(client: grpcclient.InferenceServerClient) -> None:
    # (INPUT + START + END * CORRID) * READY
    assert _run_unary(client, "simple_dyna_sequence", 40, [1, 2, 3]) == [2, 2, 43]
    assert _run_unary(client, "simple_dyna_sequence", 41, [9]) == [9 + 1 + 41]


def test_simple_string_dyna_sequence_accumulates(client: grpcclient.InferenceServerClient) -> None:
    assert _run_unary(client, "simple_string_dyna_sequence", "100", [1, 2, 3]) == [1, 3, 106]


def test_ids_are_reused_after_the_sequence_ended(client: grpcclient.InferenceServerClient) -> None:
    for _ in range(3):
        assert _run_unary(client, "simple_string_dyna_sequence", "7", [10, 20]) == [10, 37]


def test_sync_stream_interleaves_sequences_in_order(
    client: grpcclient.InferenceServerClient,
) -> None:
    results: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    plan = []  # (request id, sequence id, value, start, end)
    for step in range(3):
        for sequence_id in ("11", "12", "13"):
            plan.append((f"{sequence_id}-{step}", sequence_id, step + 1, step == 0, step == 2))
    for request_id, sequence_id, value, start, end in plan:
        client.async_stream_infer(
            "simple_string_dyna_sequence",
            [_input(grpcclient, value)],
            request_id=request_id,
            sequence_id=sequence_id,
            sequence_start=start,
            sequence_end=end,
        )
    client.stop_stream()  # waits until the server ended the stream
    outputs: dict[str, int] = {}
    order = []
    while not results.empty():
        result, error = results.get_nowait()
        assert error is None
        request_id = result.get_response().id
        order.append(request_id)
        outputs[request_id] = _output(result)
    assert sorted(order) == sorted(p[0] for p in plan)
    for sequence_id in ("11", "12", "13"):
        ids = [f"{sequence_id}-{step}" for step in range(3)]
        assert [order.index(i) for i in ids] == sorted(order.index(i) for i in ids)
        assert [outputs[i] for i in ids] == [1, 3, 6 + int(sequence_id)]


async def _stream_requests(items: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for item in items:
        yield item


async def test_aio_stream_sequential_sequences_and_id_reuse(url: str) -> None:
    items = []
    for run in range(2):  # the same uint64 id twice, one sequence after the other
        for step, value in enumerate((3, 4)):
            items.append(
                {
                    "model_name": "simple_dyna_sequence",
                    "inputs": [_input(aioclient, value)],
                    "request_id": f"{run}-{step}",
                    "sequence_id": 77,
                    "sequence_start": step == 0,
                    "sequence_end": step == 1,
                }
            )
    async with aioclient.InferenceServerClient(url) as client:
        seen = []
        async for result, error in client.stream_infer(_stream_requests(items)):
            assert error is None
            seen.append((result.get_response().id, _output(result)))
    assert seen == [("0-0", 4), ("0-1", 81), ("1-0", 4), ("1-1", 81)]


def test_oldest_strategy_spreads_sequences_over_two_instances(url: str) -> None:
    # Sequences run concurrently from threads: each is pinned to one of the two instances,
    # whose accumulators stay separate, and every result is right.
    errors: list[BaseException] = []

    def run(sequence_id: int) -> None:
        try:
            with grpcclient.InferenceServerClient(url) as client:
                values = [sequence_id % 7, 2, 3, 4]
                expected = [values[0], values[0] + 2, values[0] + 5, values[0] + 9 + sequence_id]
                got = _run_unary(client, "simple_string_dyna_sequence", str(sequence_id), values)
                assert got == expected, (sequence_id, got, expected)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(500 + i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    with grpcclient.InferenceServerClient(url) as client:
        stats = client.get_inference_statistics("simple_string_dyna_sequence")
        assert stats.model_stats[0].inference_stats.fail.count == 0


def test_missing_correlation_id_is_rejected(client: grpcclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.infer("simple_sequence", [_input(grpcclient, 1)])
    assert "StatusCode.INVALID_ARGUMENT" in str(info.value.status())
    assert (
        "inference request to model 'simple_sequence' must specify a non-zero or non-empty "
        "correlation ID" in info.value.message()
    )


def test_request_without_start_for_unknown_or_ended_sequence_is_rejected(
    client: grpcclient.InferenceServerClient,
) -> None:
    message = (
        "inference request for sequence {} to model 'simple_sequence' must specify the START "
        "flag on the first request of the sequence"
    )
    with pytest.raises(InferenceServerException, match=re.escape(message.format(4242))):
        client.infer("simple_sequence", [_input(grpcclient, 1)], sequence_id=4242)
    _run_unary(client, "simple_sequence", 4243, [1, 2])  # ended
    with pytest.raises(InferenceServerException, match=re.escape(message.format(4243))):
        client.infer("simple_sequence", [_input(grpcclient, 1)], sequence_id=4243)
    assert _run_unary(client, "simple_sequence", 4243, [1, 2]) == [2, 2]


def test_start_for_a_running_sequence_restarts_it(client: grpcclient.InferenceServerClient) -> None:
    def step(value: int, *, start: bool = False, end: bool = False) -> int:
        result = client.infer(
            "simple_string_dyna_sequence",
            [_input(grpcclient, value)],
            sequence_id="300",
            sequence_start=start,
            sequence_end=end,
        )
        return _output(result)

    assert step(5, start=True) == 5
    assert step(1) == 6
    # Triton ends the previous sequence early and goes on with the new one in its slot.
    assert step(10, start=True) == 10
    assert step(1, end=True) == 311


def test_more_sequences_than_direct_slots_wait_in_the_backlog(
    client: grpcclient.InferenceServerClient, url: str
) -> None:
    # simple_sequence: direct, max_batch_size 8, one instance: 8 slots; a ninth sequence
    # waits for one (Triton's backlog; asyncinfer's is bounded by max_sequence_backlog).
    started = []
    waited: list[int] = []

    def ninth() -> None:
        with grpcclient.InferenceServerClient(url) as other:
            result = other.infer(
                "simple_sequence", [_input(grpcclient, 5)], sequence_id=999, sequence_start=True
            )
            waited.append(_output(result))

    try:
        for sequence_id in range(900, 908):
            client.infer(
                "simple_sequence",
                [_input(grpcclient, 1)],
                sequence_id=sequence_id,
                sequence_start=True,
            )
            started.append(sequence_id)
        thread = threading.Thread(target=ninth)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive() and not waited  # every slot is in use: it waits
        # The running sequences go on meanwhile.
        result = client.infer("simple_sequence", [_input(grpcclient, 4)], sequence_id=900)
        assert _output(result) == 4
    finally:
        for sequence_id in started:
            client.infer(
                "simple_sequence",
                [_input(grpcclient, 1)],
                sequence_id=sequence_id,
                sequence_end=True,
            )
    thread.join(30)
    assert waited == [6]  # it got the first slot that ended
    client.infer("simple_sequence", [_input(grpcclient, 1)], sequence_id=999, sequence_end=True)


def test_batch_size_above_one_is_rejected(client: grpcclient.InferenceServerClient) -> None:
    tensor = grpcclient.InferInput("INPUT", [2, 1], "INT32")
    tensor.set_data_from_numpy(np.ones((2, 1), np.int32))
    with pytest.raises(InferenceServerException, match="must specify batch-size 1"):
        client.infer("simple_sequence", [tensor], sequence_id=5, sequence_start=True)


def test_idle_sequences_lose_their_slot(tmp_path: pathlib.Path) -> None:
    repository = tmp_path / "models"
    source = pathlib.Path(__file__).resolve().parents[3] / "examples" / "model_repository"
    model_dir = repository / "simple_sequence"
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "1" / "model.py").write_text(
        (source / "simple_sequence" / "1" / "model.py").read_text()
    )
    config = (source / "simple_sequence" / "config.pbtxt").read_text()
    config = config.replace(
        "max_sequence_idle_microseconds: 5000000", "max_sequence_idle_microseconds: 100000"
    )
    config = config.replace("max_batch_size: 8", "max_batch_size: 1")
    (model_dir / "config.pbtxt").write_text(config)
    server = ThreadedServer(lambda: build_server(repository, grpc_port=0))
    with server as address, grpcclient.InferenceServerClient(address) as client:
        client.infer("simple_sequence", [_input(grpcclient, 1)], sequence_id=1, sequence_start=True)
        # Sequence 2 waits in the backlog until sequence 1, idle, loses the only slot.
        result = client.infer(
            "simple_sequence",
            [_input(grpcclient, 1)],
            sequence_id=2,
            sequence_start=True,
            client_timeout=10,
        )
        assert _output(result) == 2
        with pytest.raises(InferenceServerException, match="must specify the START flag"):
            client.infer("simple_sequence", [_input(grpcclient, 1)], sequence_id=1)
