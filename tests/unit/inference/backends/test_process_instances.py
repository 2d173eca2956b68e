"""Process instances under failure: a model that cannot restart is marked broken once (no
re-spawn loop), an unload during a restart wakes the waiting request, an instance that died
between requests answers UNAVAILABLE, and a reply that cannot be read fails only its request.
And their cancellation flags: set while the execute runs, never by a request that has ended."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pathlib
import resource
import signal
import textwrap

import numpy as np
import pytest

from asyncinfer.errors import Internal, ModelLoadFailed, Unavailable
from asyncinfer.inference.backends._arena import BYTES, Arena, ArenaFull, Flag, write_flags
from asyncinfer.inference.backends._instance_process import ResponseMeta
from asyncinfer.inference.backends.process_instances import ProcessBackend, _Instance
from asyncinfer.inference.infer_types import Cancellation
from asyncinfer.inference.python_model import Request
from asyncinfer.pb.inference.model_config_pb2 import ModelConfig

# Crashes on a negative input; once MARKER exists, initialize() fails (MODE "raise") or takes
# far longer than any test (MODE "hang"): a restart that cannot succeed, or is still going.
MODEL = textwrap.dedent(
    """
    import os, time
    from asyncinfer.inference.python_model import Response, Tensor

    MARKER = {marker!r}
    MODE = {mode!r}

    class Model:
        def initialize(self, args):
            if os.path.exists(MARKER):
                if MODE == "raise":
                    raise RuntimeError("cannot start again")
                time.sleep(600)

        def execute(self, requests):
            values = requests[0].input("IN").as_numpy()
            if values[0] < 0:
                os._exit(3)
            return [Response([Tensor("OUT", values)])]
    """
)


async def _backend(tmp_path: pathlib.Path, mode: str) -> tuple[ProcessBackend, pathlib.Path]:
    marker = tmp_path / "no-more-starts"
    (tmp_path / "fragile" / "1").mkdir(parents=True)
    (tmp_path / "fragile" / "1" / "model.py").write_text(
        MODEL.format(marker=str(marker), mode=mode)
    )
    config = ModelConfig(name="fragile", backend="python")
    config.instance_group.add(count=1)
    backend = await ProcessBackend.load(config, 1, tmp_path / "fragile" / "1", tmp_path)
    return backend, marker


def _request(value: int) -> list[Request]:
    return [Request({"IN": np.array([value], np.int32)})]


async def _until(condition: object, what: str) -> None:
    for _ in range(600):  # bounded: 60 s at most
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting until {what}")


async def test_an_instance_that_cannot_restart_is_marked_broken_once(
    tmp_path: pathlib.Path,
) -> None:
    backend, marker = await _backend(tmp_path, "raise")
    (instance,) = backend._instances
    try:
        marker.touch()
        with pytest.raises(Unavailable, match=r"exited \(code 3\)"):
            await backend.execute(_request(-1))
        await _until(lambda: instance.broken, "the restart failed")
        await _until(lambda: instance._restart is None, "the restart task ended")
        # The failed start left nothing behind that could start another: no process, no pipe
        # reader, no restart task; so the count stays at the one restart.
        assert instance._process is None and instance._connection is None
        await asyncio.sleep(0.5)
        assert instance.restarts == 1 and instance._restart is None
        with pytest.raises(
            Unavailable, match="could not be restarted: RuntimeError: cannot start again"
        ):
            await backend.execute(_request(1))
    finally:
        await backend.unload()


async def test_unload_during_a_restart_fails_the_waiting_request(tmp_path: pathlib.Path) -> None:
    backend, marker = await _backend(tmp_path, "hang")
    (instance,) = backend._instances
    marker.touch()
    with pytest.raises(Unavailable, match=r"exited \(code 3\)"):
        await backend.execute(_request(-1))
    waiting = asyncio.create_task(backend.execute(_request(1)))
    await _until(instance._lock.locked, "the request waits for the restart")
    assert not instance._ready.is_set() and instance._restart is not None
    await backend.unload()
    with pytest.raises(Unavailable, match="fragile_0 was stopped"):
        await asyncio.wait_for(waiting, 10)


async def test_an_instance_dead_between_requests_answers_unavailable(
    tmp_path: pathlib.Path,
) -> None:
    backend, _ = await _backend(tmp_path, "raise")
    (instance,) = backend._instances
    try:
        assert instance._process is not None
        os.kill(instance._process.pid, signal.SIGKILL)
        instance._process.wait(10)
        # No await between the death and the request: the loop has not read the EOF yet, so
        # the request meets a closed pipe.
        with pytest.raises(Unavailable, match="fragile_0 exited; retry the request"):
            await backend.execute(_request(1))
        await _until(lambda: instance.restarts == 1 and instance._ready.is_set(), "restarted")
        (response,) = await backend.execute(_request(5))
        assert response.outputs()["OUT"][0] == 5
    finally:
        await backend.unload()


async def test_a_reply_that_cannot_be_read_fails_only_its_request() -> None:
    instance = _Instance("model", 0, 8192, ())
    ours, theirs = multiprocessing.Pipe(duplex=True)
    try:
        instance._connection = ours
        waiter = instance._waiter = asyncio.get_running_loop().create_future()
        # A BYTES output whose 3 bytes cannot hold even one 4-byte length prefix.
        bad: list[ResponseMeta] = [(None, [("OUT", BYTES, (1,), instance._arena.half, 3)], "", {})]
        theirs.send(("done", (bad, None)))
        instance._on_readable()
        with pytest.raises(Internal, match="model 'model' instance model_0: bad response"):
            await waiter
    finally:
        ours.close()
        theirs.close()
        instance._arena.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _arena_mappings() -> int:
    with open("/proc/self/maps") as maps:
        return sum("/asyncinfer-" in line for line in maps)


async def test_a_failed_load_leaks_no_arena_descriptor_or_mapping(tmp_path: pathlib.Path) -> None:
    (tmp_path / "many" / "1").mkdir(parents=True)
    (tmp_path / "many" / "1" / "model.py").write_text(MODEL.format(marker="", mode="raise"))
    config = ModelConfig(name="many", backend="python")
    config.instance_group.add(count=200)
    config.parameters["instance_shm_bytes"].string_value = str(1 << 16)
    before, mappings = _open_fds(), _arena_mappings()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Room for 40 arenas only: the 41st cannot be created, and the load fails.
    resource.setrlimit(resource.RLIMIT_NOFILE, (before + 40, hard))
    try:
        with pytest.raises(ModelLoadFailed, match="cannot create its shared-memory arena"):
            await ProcessBackend.load(config, 1, tmp_path / "many" / "1", tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert _open_fds() == before
    assert _arena_mappings() == mappings


async def test_an_instance_killed_while_restarting_starts_again(tmp_path: pathlib.Path) -> None:
    backend, marker = await _backend(tmp_path, "hang")
    (instance,) = backend._instances
    try:
        first = instance._process
        assert first is not None
        marker.touch()  # its restart now hangs in initialize()
        with pytest.raises(Unavailable, match=r"exited \(code 3\)"):
            await backend.execute(_request(-1))
        await _until(
            lambda: instance._process not in (None, first) and instance.restarts == 1,
            "the restart is under way",
        )
        restarting = instance._process
        assert restarting is not None
        marker.unlink()  # the next start succeeds
        os.kill(restarting.pid, signal.SIGKILL)  # killed while it restarts
        await _until(lambda: instance._ready.is_set(), "it started again")
        assert not instance.broken and backend.healthy and instance.restarts == 2
        (response,) = await backend.execute(_request(7))
        assert response.outputs()["OUT"][0] == 7
    finally:
        await backend.unload()


async def test_a_backend_whose_every_instance_is_broken_is_not_healthy(
    tmp_path: pathlib.Path,
) -> None:
    backend, marker = await _backend(tmp_path, "raise")
    (instance,) = backend._instances
    try:
        assert backend.healthy
        marker.touch()
        with pytest.raises(Unavailable):
            await backend.execute(_request(-1))
        await _until(lambda: instance.broken, "the restart failed")
        assert not backend.healthy
    finally:
        await backend.unload()


# IN[0] > 0: wait (30 s at most) until cancelled; IN[0] < 0: crash. OUT = [cancelled, sum].
WATCHER = textwrap.dedent(
    """
    import os, time
    import numpy as np
    from asyncinfer.inference.python_model import Response, Tensor

    class Model:
        def execute(self, requests):
            (request,) = requests
            values = request.input("IN").as_numpy()
            if values[0] < 0:
                os._exit(3)
            start = time.monotonic()
            while values[0] > 0 and not request.cancelled() and time.monotonic() < start + 30:
                time.sleep(0.005)
            out = np.array([int(request.cancelled()), int(values.sum())], np.int64)
            return [Response([Tensor("OUT", out)])]
    """
)


def _cancellable(values: list[int]) -> tuple[list[Request], Cancellation]:
    request = Request({"IN": np.array(values, np.int32)})
    cancellation = request._cancellation = Cancellation()
    return [request], cancellation


async def _answer(backend: ProcessBackend, requests: list[Request]) -> list[int]:
    (response,) = await asyncio.wait_for(backend.execute(requests), 20)
    return [int(v) for v in response.outputs()["OUT"]]


async def test_a_running_execute_sees_its_flag_and_only_its_own(tmp_path: pathlib.Path) -> None:
    (tmp_path / "watcher" / "1").mkdir(parents=True)
    (tmp_path / "watcher" / "1" / "model.py").write_text(WATCHER)
    config = ModelConfig(name="watcher", backend="python")
    backend = await ProcessBackend.load(config, 1, tmp_path / "watcher" / "1", tmp_path)
    try:
        requests, first = _cancellable([1])
        running = asyncio.create_task(_answer(backend, requests))
        await asyncio.sleep(0.3)
        assert not running.done()  # it waits for its flag
        first.cancel()
        assert await running == [1, 1]
        # The next request on the instance uses the same flag byte: written as 0 again.
        requests, _ = _cancellable([0])
        assert await _answer(backend, requests) == [0, 0]
        # Cancelled before it reached the instance: seen at once.
        requests, early = _cancellable([0])
        early.cancel()
        assert await _answer(backend, requests) == [1, 0]
        # A request that has ended, cancelled while the next one runs, must not write its
        # flag byte: that byte now lies inside the next request's input (4 bytes per item).
        requests, ended = _cancellable([0])
        assert await _answer(backend, requests) == [0, 0]
        requests, last = _cancellable([1] + [0] * 999)
        running = asyncio.create_task(_answer(backend, requests))
        await asyncio.sleep(0.3)
        ended.cancel()
        await asyncio.sleep(0.1)
        assert not running.done()
        last.cancel()
        assert await running == [1, 1]
        # An instance that died with its request's flag set is restarted with none set.
        requests, crashing = _cancellable([-1])
        crashing.cancel()
        with pytest.raises(Unavailable, match=r"exited \(code 3\)"):
            await backend.execute(requests)
        (instance,) = backend._instances
        await _until(lambda: instance.restarts == 1 and instance._ready.is_set(), "restarted")
        requests, _ = _cancellable([0])
        assert await _answer(backend, requests) == [0, 0]
    finally:
        await backend.unload()


def test_flags_are_zeroed_after_the_inputs_and_frozen_when_the_execute_ends() -> None:
    arena = Arena.create(4096)
    try:
        arena.view[0 : arena.half] = b"\xff" * arena.half
        offset = write_flags(arena, 10, arena.half, 3)
        assert offset == 64  # aligned after the inputs
        assert bytes(arena.view[offset : offset + 3]) == bytes(3)
        flag = Flag(arena, offset + 1)
        assert not flag.cancelled
        arena.view[offset + 1] = 1  # what the server does when the caller goes
        assert flag.cancelled
        flag.freeze()
        arena.view[offset + 1] = 0  # the next execute's bytes
        assert flag.cancelled
        with pytest.raises(ArenaFull):
            write_flags(arena, arena.half - 2, arena.half, 3)
    finally:
        arena.close()
