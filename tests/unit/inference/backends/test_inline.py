"""Where a plain def execute runs: quick ones move to the event loop, slow ones, blocking ones,
decoupled models and ``sync_execute: "thread"`` stay in worker threads, a sync BLS exec() runs
on the loop in a greenlet, and one that reaches the loop outside it fails clearly instead of
hanging."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import pathlib
import textwrap
import threading

import numpy as np
import pytest

from asyncinfer.errors import ModelLoadFailed
from asyncinfer.inference.backends import _inline
from asyncinfer.inference.backends._inline import (
    INLINE_BUDGET_S,
    INLINE_WALL_S,
    MAX_PROMOTE_AFTER,
    PROMOTE_AFTER,
    InlinePolicy,
    blocking_names,
)
from asyncinfer.inference.backends.thread_instances import ThreadBackend, inline_policy
from asyncinfer.inference.model import LoadedModel
from asyncinfer.inference.python_model import Request
from asyncinfer.pb.inference.model_config_pb2 import ModelConfig

QUICK = 1e-6


def test_quick_thread_executes_promote_and_two_slow_inline_ones_demote() -> None:
    policy = InlinePolicy(True)
    for _ in range(PROMOTE_AFTER - 1):
        policy.ran_in_thread(QUICK, QUICK)
    assert not policy.inline
    policy.ran_in_thread(QUICK, QUICK)
    assert policy.inline
    policy.ran_inline(INLINE_BUDGET_S, QUICK)  # one slow one: the collector, the OS
    assert policy.inline
    policy.ran_inline(QUICK, QUICK)
    policy.ran_inline(QUICK, INLINE_WALL_S)
    assert policy.inline, "a quick one in between clears the first strike"
    policy.ran_inline(QUICK, INLINE_WALL_S)
    assert not policy.inline
    for _ in range(PROMOTE_AFTER):
        policy.ran_in_thread(QUICK, QUICK)
    assert not policy.inline, "coming back takes twice as many quick executes"
    for _ in range(PROMOTE_AFTER):
        policy.ran_in_thread(QUICK, QUICK)
    assert policy.inline


def test_one_very_slow_inline_execute_demotes_and_a_slow_thread_one_resets_the_run() -> None:
    policy = InlinePolicy(True)
    for _ in range(PROMOTE_AFTER):
        policy.ran_in_thread(QUICK, QUICK)
    policy.ran_inline(QUICK, 10 * INLINE_WALL_S)
    assert not policy.inline
    for _ in range(2 * PROMOTE_AFTER - 1):
        policy.ran_in_thread(QUICK, QUICK)
    policy.ran_in_thread(INLINE_BUDGET_S, QUICK)
    policy.ran_in_thread(QUICK, QUICK)
    assert not policy.inline, "the slow one started the run again"
    for _ in range(2 * PROMOTE_AFTER - 1):
        policy.ran_in_thread(QUICK, QUICK)
    assert policy.inline


def test_a_policy_that_is_not_allowed_never_inlines() -> None:
    policy = InlinePolicy(False, "why")
    for _ in range(MAX_PROMOTE_AFTER + 1):
        policy.ran_in_thread(QUICK, QUICK)
    assert not policy.inline
    allowed = InlinePolicy(True)
    for _ in range(PROMOTE_AFTER):
        allowed.ran_in_thread(QUICK, QUICK)
    allowed.forbid("it called exec()")
    assert not allowed.inline and not allowed.allowed and allowed.reason == "it called exec()"


def test_blocking_names_sees_calls_in_functions_but_not_annotations(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "model.py"
    path.write_text(
        textwrap.dedent(
            """
            import triton_python_backend_utils as pb_utils

            class TritonPythonModel:
                def execute(self, requests: list[pb_utils.InferenceRequest]):
                    return [pb_utils.InferenceResponse([]) for _ in requests]
            """
        )
    )
    assert blocking_names(path) == frozenset()
    path.write_text(
        textwrap.dedent(
            """
            import time
            import triton_python_backend_utils as pb_utils

            class TritonPythonModel:
                def execute(self, requests):
                    helper = lambda r: pb_utils.InferenceRequest("m", r.inputs(), []).exec()
                    time.sleep(0)
                    return [helper(r) for r in requests]
            """
        )
    )
    assert blocking_names(path) == {"InferenceRequest", "exec", "sleep"}


QUICK_MODEL = """
import threading
from asyncinfer.inference.python_model import Response, Tensor

class Model:
    def initialize(self, args):
        self.threads = []

    def execute(self, requests):
        self.threads.append(threading.get_ident())
        return [Response([Tensor("OUT", r.input("IN").as_numpy())]) for r in requests]
"""


async def _load(tmp_path: pathlib.Path, source: str, **parameters: str) -> ThreadBackend:
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.py").write_text(textwrap.dedent(source))
    config = ModelConfig(name="m", backend="python")
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    return await ThreadBackend.load(config, 1, tmp_path / "m" / "1", tmp_path)


async def _run(backend: ThreadBackend, calls: int) -> None:
    for _ in range(calls):
        (response,) = await backend.execute([Request({"IN": np.arange(3)})])
        np.testing.assert_array_equal(response.outputs()["OUT"], np.arange(3))


@pytest.fixture
def steady(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounds this busy test machine cannot overrun by accident (nothing else changes)."""
    monkeypatch.setattr(_inline, "INLINE_BUDGET_S", 0.5)
    monkeypatch.setattr(_inline, "INLINE_WALL_S", 5.0)


async def test_a_quick_sync_execute_moves_to_the_loop(tmp_path: pathlib.Path, steady: None) -> None:
    backend = await _load(tmp_path, QUICK_MODEL)
    await _run(backend, PROMOTE_AFTER + 4)
    (instance,) = backend._instances
    loop_thread = threading.get_ident()
    assert loop_thread not in instance.threads[:PROMOTE_AFTER], "it starts in threads"
    assert instance.threads[PROMOTE_AFTER:] == [loop_thread] * 4
    await backend.unload()


async def test_sync_execute_thread_keeps_it_in_threads(
    tmp_path: pathlib.Path, steady: None
) -> None:
    backend = await _load(tmp_path, QUICK_MODEL, sync_execute="thread")
    await _run(backend, PROMOTE_AFTER + 4)
    (instance,) = backend._instances
    assert threading.get_ident() not in instance.threads
    await backend.unload()


async def test_a_slow_sync_execute_stays_in_threads(tmp_path: pathlib.Path) -> None:
    sleeps = "def execute(self, requests):\n        __import__('time').sleep(0.002)"
    backend = await _load(tmp_path, QUICK_MODEL.replace("def execute(self, requests):", sleeps))
    await _run(backend, PROMOTE_AFTER + 4)
    (instance,) = backend._instances
    assert threading.get_ident() not in instance.threads
    await backend.unload()


async def test_a_decoupled_model_or_a_blocking_one_never_inlines(tmp_path: pathlib.Path) -> None:
    config = ModelConfig(name="m", backend="python")
    config.model_transaction_policy.decoupled = True
    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent(QUICK_MODEL))
    policy = inline_policy(config, path)
    assert not policy.allowed and "decoupled" in policy.reason
    waits = "self.threads = []\n        event = threading.Event()\n        event.wait(0)"
    path.write_text(textwrap.dedent(QUICK_MODEL).replace("self.threads = []", waits))
    policy = inline_policy(ModelConfig(name="m"), path)
    assert not policy.allowed and "Event" in policy.reason and "wait" in policy.reason


async def test_a_bad_sync_execute_parameter_fails_the_load(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ModelLoadFailed, match="'sync_execute' must be 'auto' or 'thread'"):
        await _load(tmp_path, QUICK_MODEL, sync_execute="fast")


HIDDEN_BLS = """
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        kind = getattr(pb_utils, "Inference" + "Request")
        out = []
        for request in requests:
            if request.parameters() != "{}":  # only once on the loop: the call would block
                getattr(kind("other", [], []), "ex" + "ec")()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", 1 + request
                .get_input_tensor_by_name("IN").as_numpy())]))
        return out
"""


class _NoModels:
    def get(self, name: str, version: str = "") -> LoadedModel:
        raise AssertionError("never reached")

    def is_ready(self, name: str, version: str = "") -> bool:
        return False


async def test_a_sync_bls_exec_on_the_loop_fails_clearly_and_moves_the_model_to_threads(
    tmp_path: pathlib.Path, steady: None
) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.py").write_text(HIDDEN_BLS)
    config = ModelConfig(name="m", backend="python")
    backend = await ThreadBackend.load(
        config, 1, tmp_path / "m" / "1", tmp_path, models=_NoModels()
    )
    assert backend._policy.allowed, "the scan cannot see through getattr"
    for _ in range(PROMOTE_AFTER):
        await backend.execute([Request({"IN": np.arange(2)})])
    assert backend._policy.inline
    (failed,) = await backend.execute([Request({"IN": np.arange(2)}, parameters={"x": 1})])
    assert failed.error is not None
    assert "ran on the event loop" in failed.error.message
    assert "sync_execute" in failed.error.message
    assert not backend._policy.inline and not backend._policy.allowed
    # In a thread now, the same call reaches the (empty) server instead of the loop check.
    (answer,) = await backend.execute([Request({"IN": np.arange(2)}, parameters={"x": 1})])
    assert answer.error is not None and "not ready" in answer.error.message
    await backend.unload()


RAISES = """
from asyncinfer.inference.python_model import Response, Tensor

class Model:
    def execute(self, requests):
        if requests[0].input("IN").as_numpy()[0] < 0:
            raise ValueError("negative")
        return [Response([Tensor("OUT", r.input("IN").as_numpy())]) for r in requests]
"""


async def test_an_execute_raises_the_same_in_a_thread_and_on_the_loop(
    tmp_path: pathlib.Path, steady: None
) -> None:
    backend = await _load(tmp_path, RAISES)
    with pytest.raises(ValueError, match="negative"):
        await backend.execute([Request({"IN": np.array([-1])})])
    await _run(backend, PROMOTE_AFTER)
    assert backend._policy.inline
    with pytest.raises(ValueError, match="negative"):
        await backend.execute([Request({"IN": np.array([-1])})])
    await backend.unload()


# ------------------------------------------------------------------ executes that wait (greenlets)

CALLER_VALUE: contextvars.ContextVar[str] = contextvars.ContextVar("caller_value", default="")


async def _answer_later(value: int) -> int:
    await asyncio.sleep(0.05)
    return value * 10


async def _fail_later() -> int:
    await asyncio.sleep(0)
    raise ValueError("the work failed")


class _Recording(InlinePolicy):
    """A policy that keeps what it was told."""

    def __init__(self, allowed: bool, suspends: bool) -> None:
        super().__init__(allowed, suspends=suspends)
        self.times: list[tuple[float, float]] = []

    def ran_inline(self, cpu: float, wall: float) -> None:
        self.times.append((cpu, wall))
        super().ran_inline(cpu, wall)


async def test_a_suspendable_execute_waits_for_loop_work_on_the_loop() -> None:
    seen: list[object] = []

    def execute(requests: list[int]) -> list[int]:
        seen.extend([threading.get_ident(), CALLER_VALUE.get(), _inline.INLINE.get()])
        assert _inline.suspendable()
        answers = [_inline.await_on_loop(_answer_later(r)) for r in requests]
        try:
            _inline.await_on_loop(_fail_later())
        except ValueError as exc:  # raised where the execute waits
            answers.append(len(str(exc)))
        return answers

    policy = _Recording(True, suspends=True)
    CALLER_VALUE.set("the caller's")
    answers = await _inline.run_suspendable(policy, execute, [1, 2])
    assert answers == [10, 20, len("the work failed")]
    assert seen == [threading.get_ident(), "the caller's", policy]
    assert _inline.INLINE.get() is None, "the execute ran in a copy of the caller's context"
    ((cpu, wall),) = policy.times
    assert wall < 0.1, "the 0.1 s of waits are not the execute's time"
    assert 0 < cpu <= wall + 0.01


async def test_a_suspendable_execute_that_raises_raises_to_its_caller() -> None:
    def execute(requests: list[int]) -> list[int]:
        _inline.await_on_loop(_answer_later(1))
        raise KeyError("after the wait")

    with pytest.raises(KeyError, match="after the wait"):
        await _inline.run_suspendable(InlinePolicy(True, suspends=True), execute, [])


async def test_waiting_on_the_loop_outside_a_suspendable_execute_is_refused() -> None:
    assert not _inline.suspendable()
    work = _answer_later(1)
    with pytest.raises(RuntimeError, match="outside an execute run_suspendable drives"):
        _inline.await_on_loop(work)
    assert inspect.getcoroutinestate(work) == inspect.CORO_CLOSED, "closed, never left unawaited"


def test_waits_noted_in_a_thread_are_taken_once() -> None:
    _inline.take_waits()
    _inline.note_wait(0.25)
    _inline.note_wait(0.5)
    assert _inline.take_waits() == 0.75
    assert _inline.take_waits() == 0.0


def test_only_sync_bls_names_let_a_blocking_model_run_on_the_loop(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "model.py"
    bls = "def execute(self, requests):\n        pb_utils.InferenceRequest('m', [], []).exec()"
    path.write_text(textwrap.dedent(QUICK_MODEL).replace("def execute(self, requests):", bls))
    policy = inline_policy(ModelConfig(name="m"), path)
    assert policy.allowed and policy.suspends
    path.write_text(textwrap.dedent(QUICK_MODEL))
    policy = inline_policy(ModelConfig(name="m"), path)
    assert policy.allowed and not policy.suspends, "no BLS: a plain call, no greenlet"
    sleeps = bls + "\n        time.sleep(0)"
    path.write_text(textwrap.dedent(QUICK_MODEL).replace("def execute(self, requests):", sleeps))
    assert not inline_policy(ModelConfig(name="m"), path).allowed


async def test_a_suspendable_execute_whose_caller_goes_runs_to_its_end() -> None:
    started, gone, ended = asyncio.Event(), [], []
    waits: list[str] = []

    async def forever() -> int:
        started.set()
        await asyncio.sleep(3600)
        return 0

    def execute(requests: list[int]) -> str:
        for work in (forever(), _answer_later(1)):
            try:
                _inline.await_on_loop(work)
                waits.append("answered")
            except asyncio.CancelledError:
                waits.append("cancelled")
        ended.append(True)
        raise ValueError("moot: its caller has gone")

    policy = _Recording(True, suspends=True)
    call = asyncio.create_task(
        _inline.run_suspendable(policy, execute, [], lambda: gone.append(True))
    )
    await started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert waits == ["cancelled", "cancelled"], "the wait and every later one raise"
    assert ended == [True] and gone == [True]
    assert len(policy.times) == 1
