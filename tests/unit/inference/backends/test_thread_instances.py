"""The python backend never runs two calls on one instance, cancellation included."""

from __future__ import annotations

import asyncio
import pathlib
import textwrap

import numpy as np

from asyncinfer.inference.backends.thread_instances import ThreadBackend, _Idle
from asyncinfer.inference.python_model import Request
from asyncinfer.pb.inference.model_config_pb2 import ModelConfig

# A sync execute that records how many calls run on the instance at once.
MODEL = textwrap.dedent(
    """
    import threading, time
    from asyncinfer.inference.python_model import Response, Tensor

    class Model:
        def initialize(self, args):
            self.lock = threading.Lock()
            self.running = 0
            self.most = 0

        def execute(self, requests):
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
            time.sleep(float(requests[0].input("SECONDS").as_numpy()[0]))
            with self.lock:
                self.running -= 1
            return [Response([Tensor("OUT", r.input("SECONDS").as_numpy())]) for r in requests]
    """
)


async def _backend(tmp_path: pathlib.Path) -> ThreadBackend:
    (tmp_path / "slow" / "1").mkdir(parents=True)
    (tmp_path / "slow" / "1" / "model.py").write_text(MODEL)
    config = ModelConfig(name="slow", backend="python")
    return await ThreadBackend.load(config, 1, tmp_path / "slow" / "1", tmp_path)


def _request(seconds: float) -> list[Request]:
    return [Request({"SECONDS": np.array([seconds])})]


async def test_a_cancelled_sync_execute_keeps_its_instance_until_its_thread_ends(
    tmp_path: pathlib.Path,
) -> None:
    backend = await _backend(tmp_path)
    (instance,) = backend._instances
    first = asyncio.create_task(backend.execute(_request(0.3)))
    while instance.running == 0:  # noqa: ASYNC110 - the instance's own counter
        await asyncio.sleep(0.005)
    first.cancel()
    second = asyncio.create_task(backend.execute(_request(0.01)))
    await asyncio.gather(first, return_exceptions=True)
    await second
    assert first.cancelled()
    assert instance.most == 1, "the second call ran on the instance beside the cancelled one"
    await backend.unload()


async def test_waiting_calls_get_the_instance_in_turn_and_a_cancelled_waiter_loses_none(
    tmp_path: pathlib.Path,
) -> None:
    backend = await _backend(tmp_path)
    (instance,) = backend._instances
    finished: list[str] = []

    async def call(name: str, seconds: float) -> None:
        await backend.execute(_request(seconds))
        finished.append(name)

    busy = asyncio.create_task(call("busy", 0.1))
    while instance.running == 0:  # noqa: ASYNC110 - the instance's own counter
        await asyncio.sleep(0.005)
    waiting = [asyncio.create_task(call(name, 0.01)) for name in ("a", "gone", "b", "c")]
    await asyncio.sleep(0.01)  # all four wait for the one instance, in this order
    waiting[1].cancel()
    await asyncio.gather(busy, *waiting, return_exceptions=True)
    assert waiting[1].cancelled()
    assert finished == ["busy", "a", "b", "c"]
    assert instance.most == 1
    await asyncio.wait_for(backend.unload(), 5)  # the instance came back: unload gets it


async def test_an_instance_handed_to_a_waiter_cancelled_before_it_ran_goes_to_the_next() -> None:
    idle = _Idle()
    first, second = asyncio.create_task(idle.take()), asyncio.create_task(idle.take())
    await asyncio.sleep(0)  # both wait
    idle.give("instance")  # handed to the first waiter...
    first.cancel()  # ...which is cancelled before it runs again
    assert await asyncio.wait_for(second, 1) == "instance"
    assert first.cancelled()
    assert not idle.free and not idle.handover.waiters
