"""RemoteManager over HTTP/REST (``http://`` URLs): the same bindings, local checks, results and
errors as over gRPC (test_remote_runner.py), through the HTTP front end."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from asyncinfer.client.remote import RemoteManager, SyncRemoteManager
from asyncinfer.errors import InvalidArgument, NotFound, Unavailable, UsageError
from asyncinfer.runner import Binding


async def test_http_manager_runs_simple_and_bytes(http_url: str) -> None:
    async with RemoteManager(f"http://{http_url}") as manager:
        assert "simple" in manager.get_models()
        runner = manager.infer_runner("simple")
        assert runner.input_bindings()["INPUT0"] == Binding(
            "INPUT0", "INT32", np.dtype("<i4"), (-1, 16)
        )
        a = np.arange(16, dtype=np.int32).reshape(1, 16)
        outputs = await runner.infer(INPUT0=a, INPUT1=a)
        np.testing.assert_array_equal(outputs["OUTPUT0"], a * 2)
        np.testing.assert_array_equal(outputs["OUTPUT1"], a * 0)
        strings = manager.infer_runner("simple_identity")
        data = np.array([[b"x\x00", b"\xff"]], dtype=np.object_)
        assert list((await strings.infer(INPUT0=data))["OUTPUT0"][0]) == [b"x\x00", b"\xff"]


async def test_http_manager_that_cannot_connect_says_unavailable() -> None:
    manager = RemoteManager("http://127.0.0.1:1", timeout=2)
    with pytest.raises(Unavailable, match=r"127\.0\.0\.1:1"):
        await manager.connect()


async def test_http_manager_errors_are_the_servers_classes_and_texts(http_url: str) -> None:
    async with RemoteManager(f"http://{http_url}") as manager:
        runner = manager.infer_runner("simple")
        with pytest.raises(InvalidArgument, match="missing required input"):
            runner.infer(INPUT0=np.zeros((1, 16), np.int32))
        a = np.zeros((1, 16), np.int32)
        with pytest.raises(NotFound, match="version 9 is not found"):
            await manager.infer_runner("simple", version="9").infer(INPUT0=a, INPUT1=a)


def test_sync_http_manager_runs_simple_and_answers_the_servers_errors(http_url: str) -> None:
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    with SyncRemoteManager(f"http://{http_url}") as manager:
        assert "simple" in manager.get_models()
        runner = manager.infer_runner("simple")
        futures = [runner.infer(INPUT0=a + k, INPUT1=a) for k in range(8)]
        for k, future in enumerate(futures):
            outputs = future.result(30)
            np.testing.assert_array_equal(outputs["OUTPUT0"], 2 * a + k)
            np.testing.assert_array_equal(outputs["OUTPUT1"], np.full_like(a, k))
        missing = manager.infer_runner("simple", version="9").infer(INPUT0=a, INPUT1=a)
        with pytest.raises(NotFound, match="version 9 is not found"):
            missing.result(30)
    with pytest.raises(UsageError, match="connect"):
        manager.get_models()


def test_sync_http_manager_that_cannot_connect_leaves_nothing_running() -> None:
    before = {thread.name for thread in threading.enumerate()}
    manager = SyncRemoteManager("http://127.0.0.1:1", timeout=2)
    for _ in range(2):  # the retry fails the same way, not with "already connected"
        with pytest.raises(Unavailable, match=r"127\.0\.0\.1:1"):
            manager.connect()
    assert "asyncinfer-http-client" not in {t.name for t in threading.enumerate()} - before
    with pytest.raises(UsageError, match="connect"):
        manager.get_models()
