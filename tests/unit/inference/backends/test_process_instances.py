"""Process instances under failure: a model that cannot restart is marked broken once (no
re-spawn loop), an unload during a restart wakes the waiting request, an instance that died
between requests answers UNAVAILABLE, and a reply that cannot be read fails only its request."""

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
from asyncinfer.inference.backends._arena import BYTES
from asyncinfer.inference.backends.process_instances import ProcessBackend, _Instance
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
        theirs.send(("done", [(None, [("OUT", BYTES, (1,), instance._arena.half, 3)])]))
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
