"""The dynamic batcher over the real python backend: batch forming, splitting, policies."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncinfer.errors import DeadlineExceeded, InvalidArgument, Unavailable
from asyncinfer.inference.backends.thread_instances import ThreadBackend
from asyncinfer.inference.python_model import ModelError, Request, Response, Tensor
from asyncinfer.inference.repository.model_config import parse_pbtxt
from asyncinfer.inference.scheduling import SizedRequest, make_scheduler
from asyncinfer.inference.scheduling.dynamic_batcher import DynamicBatcher
from asyncinfer.inference.statistics import ModelStats, RequestTiming


class Echo:
    """Answers each request with its own input plus its position in the batch times zero.

    It records every batch (the list of request ids) and can be held at a gate, so a test
    decides when an execute finishes; ids starting with "fail" get a per-request error.
    """

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def execute(self, requests: list[Request]) -> list[Response]:
        self.batches.append([r.id for r in requests])
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        responses = []
        for request in requests:
            if request.id.startswith("fail"):
                responses.append(Response(error=ModelError(f"{request.id} failed")))
                continue
            x = request.input("X")
            assert x is not None
            responses.append(Response([Tensor("Y", x.as_numpy() * 2)]))
        return responses


def config(batching: str = "", max_batch_size: int = 8) -> Any:
    return parse_pbtxt(
        f"""
        name: "echo"
        max_batch_size: {max_batch_size}
        input [ {{ name: "X" data_type: TYPE_INT32 dims: [ -1 ] }} ]
        output [ {{ name: "Y" data_type: TYPE_INT32 dims: [ -1 ] }} ]
        dynamic_batching {{ {batching} }}
        """,
        model="echo",
    )


def request(rid: str, rows: int = 1, width: int = 2, value: int = 0) -> Request:
    return Request({"X": np.full((rows, width), value, np.int32)}, id=rid)


async def started(batching: str = "", instances: int = 1, **kwargs: Any) -> Any:
    models = [Echo() for _ in range(instances)]
    backend = ThreadBackend("echo", 1, models)
    stats = ModelStats()
    batcher = make_scheduler(config(batching, **kwargs), backend, stats)
    assert isinstance(batcher, DynamicBatcher)
    await batcher.start()
    return batcher, models, stats


async def hold_first(batcher: DynamicBatcher, model: Echo) -> asyncio.Task[Response]:
    """Occupy the only instance with request "first" until model.gate is set."""
    model.gate = asyncio.Event()
    task = asyncio.create_task(batcher.submit(request("first")))
    await model.entered.wait()
    return task


async def test_requests_arriving_while_busy_run_as_one_batch_answered_per_request() -> None:
    batcher, (model,), stats = await started()
    first = await hold_first(batcher, model)
    tasks = [asyncio.create_task(batcher.submit(request(f"r{i}", value=i))) for i in range(5)]
    await asyncio.sleep(0.01)
    assert model.gate is not None
    model.gate.set()
    answers = await asyncio.gather(*tasks)
    await first
    assert model.batches == [["first"], [f"r{i}" for i in range(5)]]
    for i, response in enumerate(answers):
        np.testing.assert_array_equal(response.outputs()["Y"], np.full((1, 2), 2 * i))
    assert stats.execution_count == 2
    assert sorted(stats.batches) == [1, 5]
    await batcher.stop()


async def test_batch_stops_at_max_batch_size_and_at_a_different_shape() -> None:
    batcher, (model,), _ = await started(max_batch_size=4)
    first = await hold_first(batcher, model)
    shapes = [("a", 3, 2), ("b", 1, 2), ("c", 1, 2), ("d", 1, 3), ("e", 1, 3)]
    tasks = [asyncio.create_task(batcher.submit(request(r, n, w))) for r, n, w in shapes]
    await asyncio.sleep(0.01)
    assert model.gate is not None
    model.gate.set()
    await asyncio.gather(first, *tasks)
    assert model.batches == [["first"], ["a", "b"], ["c"], ["d", "e"]]
    await batcher.stop()


async def test_preferred_batch_size_cuts_the_batch() -> None:
    batcher, (model,), _ = await started("preferred_batch_size: [ 2 ]")
    first = await hold_first(batcher, model)
    tasks = [asyncio.create_task(batcher.submit(request(f"r{i}"))) for i in range(3)]
    await asyncio.sleep(0.01)
    assert model.gate is not None
    model.gate.set()
    await asyncio.gather(first, *tasks)
    assert model.batches == [["first"], ["r0", "r1"], ["r2"]]
    await batcher.stop()


async def test_queue_delay_waits_for_more_requests_then_runs_what_it_has() -> None:
    batcher, (model,), _ = await started("max_queue_delay_microseconds: 100000")
    tasks = [asyncio.create_task(batcher.submit(request(f"r{i}"))) for i in range(3)]
    await asyncio.gather(*tasks)
    assert model.batches == [["r0", "r1", "r2"]]
    await batcher.stop()


async def test_a_failing_request_fails_alone() -> None:
    batcher, (model,), _ = await started()
    first = await hold_first(batcher, model)
    tasks = [asyncio.create_task(batcher.submit(request(rid))) for rid in ("ok1", "fail", "ok2")]
    await asyncio.sleep(0.01)
    assert model.gate is not None
    model.gate.set()
    answers = await asyncio.gather(first, *tasks)
    assert [a.error is not None for a in answers] == [False, False, True, False]
    assert answers[2].error is not None and "fail failed" in answers[2].error.message
    await batcher.stop()


async def test_queue_full_is_unavailable_naming_model_and_size() -> None:
    batcher, (model,), _ = await started("default_queue_policy { max_queue_size: 2 }")
    first = await hold_first(batcher, model)
    waiting = [asyncio.create_task(batcher.submit(request(f"r{i}"))) for i in range(2)]
    await asyncio.sleep(0.01)
    with pytest.raises(Unavailable, match=r"model 'echo'.*max_queue_size 2"):
        await batcher.submit(request("over"))
    assert model.gate is not None
    model.gate.set()
    await asyncio.gather(first, *waiting)
    await batcher.stop()


async def test_timeout_reject_fails_with_unavailable_and_others_keep_running() -> None:
    batcher, (model,), _ = await started(
        "default_queue_policy { default_timeout_microseconds: 20000 timeout_action: REJECT }"
    )
    first = await hold_first(batcher, model)
    with pytest.raises(Unavailable, match=r"model 'echo'.*timed out after 20000 us"):
        await batcher.submit(request("late"))
    assert model.gate is not None
    model.gate.set()
    await first
    assert batcher.queued() == 0
    answer = await batcher.submit(request("after"))
    assert answer.error is None
    assert ["late"] not in model.batches
    await batcher.stop()


async def test_timeout_delay_runs_after_requests_within_their_timeout() -> None:
    batcher, (model,), _ = await started(
        """default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 1000
        allow_timeout_override: true }""",
        max_batch_size=1,
    )
    first = await hold_first(batcher, model)
    delayed = asyncio.create_task(batcher.submit(request("delayed")))
    await asyncio.sleep(0.02)  # "delayed" is past its 1 ms timeout
    fresh = asyncio.create_task(batcher.submit(request("fresh"), timeout_us=60_000_000))
    await asyncio.sleep(0.01)
    assert model.gate is not None
    model.gate.set()
    await asyncio.gather(first, delayed, fresh)
    assert model.batches == [["first"], ["fresh"], ["delayed"]]
    await batcher.stop()


async def test_delayed_requests_still_run_before_less_urgent_levels() -> None:
    batcher, (model,), _ = await started(
        """priority_levels: 2 default_priority_level: 2
        priority_queue_policy { key: 1 value {
            timeout_action: DELAY default_timeout_microseconds: 1000 } }""",
        max_batch_size=1,
    )
    first = await hold_first(batcher, model)
    low = asyncio.create_task(batcher.submit(request("low"), priority=2))
    delayed = asyncio.create_task(batcher.submit(request("urgent-delayed"), priority=1))
    await asyncio.sleep(0.02)  # past the 1 ms timeout of level 1
    assert model.gate is not None
    model.gate.set()
    await asyncio.gather(first, low, delayed)
    assert model.batches == [["first"], ["urgent-delayed"], ["low"]]
    await batcher.stop()


async def test_higher_priority_runs_first() -> None:
    batcher, (model,), _ = await started(
        "priority_levels: 3 default_priority_level: 3", max_batch_size=1
    )
    first = await hold_first(batcher, model)
    order = [("low", 3), ("mid", 2), ("default", 0), ("high", 1)]
    tasks = [asyncio.create_task(batcher.submit(request(r), priority=p)) for r, p in order]
    await asyncio.sleep(0.01)
    assert model.gate is not None
    model.gate.set()
    await asyncio.gather(first, *tasks)
    assert model.batches == [["first"], ["high"], ["mid"], ["low"], ["default"]]
    await batcher.stop()


async def test_bad_priority_and_forbidden_timeout_override_are_invalid_argument() -> None:
    batcher, _, _ = await started("priority_levels: 2 default_priority_level: 1")
    with pytest.raises(InvalidArgument, match=r"model 'echo'.*priority level 3 is out of range"):
        await batcher.submit(request("r"), priority=3)
    with pytest.raises(InvalidArgument, match=r"model 'echo'.*timeout override"):
        await batcher.submit(request("r"), timeout_us=5)
    assert (await batcher.submit(request("ok"), priority=2)).error is None
    await batcher.stop()


@pytest.mark.parametrize(
    ("batching", "problem"),
    [
        ("preferred_batch_size: [ 9 ]", "preferred_batch_size"),
        ("priority_levels: 2 default_priority_level: 3", "default_priority_level"),
        (
            "priority_levels: 2 default_priority_level: 1 "
            "priority_queue_policy { key: 5 value {} }",
            "priority_queue_policy",
        ),
    ],
)
def test_bad_batching_config_fails_the_load(batching: str, problem: str) -> None:
    backend = ThreadBackend("echo", 1, [Echo()])
    with pytest.raises(InvalidArgument, match=f"failed to load 'echo'.*{problem}"):
        make_scheduler(config(batching), backend, ModelStats())


def test_a_model_that_does_not_batch_cannot_be_batched_dynamically() -> None:
    backend = ThreadBackend("echo", 1, [Echo()])
    with pytest.raises(InvalidArgument, match="max_batch_size > 0"):
        make_scheduler(config(max_batch_size=0), backend, ModelStats())


async def test_preserve_ordering_answers_in_arrival_order_across_instances() -> None:
    batcher, models, _ = await started("preserve_ordering: true", instances=2, max_batch_size=1)
    slow, fast = models
    slow.gate = asyncio.Event()
    finished: list[str] = []

    async def call(rid: str) -> None:
        await batcher.submit(request(rid))
        finished.append(rid)

    # The idle queue hands "a" to one instance; make sure it is the gated one.
    a = asyncio.create_task(call("a"))
    entered = [asyncio.create_task(m.entered.wait()) for m in models]
    await asyncio.wait(entered, return_when=asyncio.FIRST_COMPLETED)
    for waiter in entered:
        waiter.cancel()
    if fast.batches:
        slow, fast = fast, slow
        slow.gate, fast.gate = fast.gate, None
    b = asyncio.create_task(call("b"))
    await fast.entered.wait()
    await asyncio.sleep(0.01)
    assert finished == []  # "b" ran, but waits for "a"
    assert slow.gate is not None
    slow.gate.set()
    await asyncio.gather(a, b)
    assert finished == ["a", "b"]
    await batcher.stop()


async def test_caller_gone_before_the_batch_forms_is_dropped() -> None:
    batcher, (model,), _ = await started()
    first = await hold_first(batcher, model)
    gone = asyncio.create_task(batcher.submit(request("gone")))
    kept = asyncio.create_task(batcher.submit(request("kept")))
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.sleep(0)
    assert model.gate is not None
    model.gate.set()
    await asyncio.gather(first, kept)
    assert model.batches == [["first"], ["kept"]]
    await batcher.stop()


async def test_stop_fails_queued_requests_with_unavailable() -> None:
    batcher, (model,), _ = await started()
    first = await hold_first(batcher, model)
    queued = asyncio.create_task(batcher.submit(request("queued")))
    await asyncio.sleep(0.01)
    stopping = asyncio.create_task(batcher.stop())
    await asyncio.sleep(0.01)
    assert model.gate is not None
    model.gate.set()
    await stopping
    assert (await first).error is None
    with pytest.raises(Unavailable, match="unloaded"):
        await queued
    with pytest.raises(Unavailable, match="being unloaded"):
        await batcher.submit(request("late"))


async def test_timing_reports_when_the_batch_began() -> None:
    batcher, _, _ = await started("max_queue_delay_microseconds: 20000")
    timing = RequestTiming()
    timing.queue_start_ns = time.perf_counter_ns()
    await batcher.submit(request("r"), timing=timing)
    assert timing.compute_start_ns - timing.queue_start_ns >= 15_000_000  # it waited ~20 ms
    await batcher.stop()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(-1000, 1000)),
        min_size=1,
        max_size=24,
    ),
    st.integers(1, 3),
)
def test_every_request_gets_its_own_answer_whatever_the_batches(
    shapes: list[tuple[int, int, int]], instances: int
) -> None:
    """Split/merge property: rows and widths vary, answers never mix up across requests."""

    async def scenario() -> None:
        batcher, models, stats = await started(
            "max_queue_delay_microseconds: 500", instances=instances
        )
        calls = [
            batcher.submit(request(f"r{i}", rows, width, value))
            for i, (rows, width, value) in enumerate(shapes)
        ]
        answers = await asyncio.gather(*calls)
        for (rows, width, value), answer in zip(shapes, answers, strict=True):
            np.testing.assert_array_equal(
                answer.outputs()["Y"], np.full((rows, width), 2 * value, np.int32)
            )
        batched = [rid for model in models for batch in model.batches for rid in batch]
        assert sorted(batched) == sorted(f"r{i}" for i in range(len(shapes)))
        assert stats.execution_count == sum(len(model.batches) for model in models)
        assert sum(stats.batches[size].compute_infer.count for size in stats.batches) == (
            stats.execution_count
        )
        await batcher.stop()

    asyncio.run(scenario())


class Raising(Echo):
    """Raises from execute for batches holding a request with id "boom"."""

    async def execute(self, requests: list[Request]) -> list[Response]:
        if any(r.id == "boom" for r in requests):
            self.batches.append([r.id for r in requests])
            raise RuntimeError("backend broke")
        return await super().execute(requests)


async def test_a_failed_execute_is_not_counted_as_an_execution() -> None:
    model = Raising()
    stats = ModelStats()
    batcher = make_scheduler(config(), ThreadBackend("echo", 1, [model]), stats)
    assert isinstance(batcher, DynamicBatcher)
    await batcher.start()
    first = await hold_first(batcher, model)
    tasks = [asyncio.create_task(batcher.submit(request(r))) for r in ("a", "boom", "b")]
    await asyncio.sleep(0.01)
    assert model.gate is not None
    model.gate.set()
    results = await asyncio.gather(first, *tasks, return_exceptions=True)
    assert model.batches == [["first"], ["a", "boom", "b"]]
    assert all(isinstance(r, RuntimeError) for r in results[1:])
    # Only the successful execute counts (Triton: execution_count = successful executions).
    assert stats.execution_count == 1
    assert sorted(stats.batches) == [1]
    await batcher.stop()


async def test_a_request_whose_deadline_passed_in_the_queue_is_never_run() -> None:
    batcher, (model,), _ = await started("max_queue_delay_microseconds: 0")
    first = await hold_first(batcher, model)
    late = SizedRequest(
        {"X": np.zeros((1, 2), np.int32)}, batch_size=1, id="late", deadline=time.monotonic() + 0.05
    )
    timely = SizedRequest(
        {"X": np.zeros((1, 2), np.int32)}, batch_size=1, id="timely", deadline=time.monotonic() + 60
    )
    waiting = [asyncio.ensure_future(batcher.submit(r)) for r in (late, timely)]
    await asyncio.sleep(0.1)  # the late one's deadline passes while the instance is busy
    assert model.gate is not None
    model.gate.set()
    await first
    with pytest.raises(DeadlineExceeded, match="not run before its deadline"):
        await waiting[0]
    await waiting[1]
    assert ["late"] not in model.batches and all("late" not in b for b in model.batches)
    assert ["timely"] in model.batches
    await batcher.stop()
