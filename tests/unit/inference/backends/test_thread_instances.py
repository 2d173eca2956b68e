"""The python backend never runs two calls on one instance, cancellation included."""

from __future__ import annotations

import asyncio
import pathlib
import textwrap

import numpy as np

from asyncinfer.inference.backends.thread_instances import ThreadBackend
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
