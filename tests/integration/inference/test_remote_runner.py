"""The InferRunner API over the protocol: RemoteManager (asyncio) and SyncRemoteManager."""

from __future__ import annotations

import pathlib
import socket

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from asyncinfer.client.remote import RemoteManager, SyncRemoteManager
from asyncinfer.errors import InvalidArgument, NotFound, Unavailable, UsageError
from asyncinfer.inference.app import build_server
from asyncinfer.runner import Binding

from .inference_servers import REPOSITORY, ThreadedServer

#: Every model of the example repository (all load at start in control mode none).
MODELS = sorted(p.name for p in REPOSITORY.iterdir() if (p / "config.pbtxt").is_file())


async def test_async_manager_runs_simple(url: str) -> None:
    async with RemoteManager(url) as manager:
        assert manager.get_models() == MODELS
        runner = manager.infer_runner("simple")
        assert runner.input_bindings()["INPUT0"] == Binding(
            "INPUT0", "INT32", np.dtype("<i4"), (-1, 16)
        )
        assert list(runner.output_bindings()) == ["OUTPUT0", "OUTPUT1"]
        a = np.arange(16, dtype=np.int32).reshape(1, 16)
        outputs = await runner.infer(INPUT0=a, INPUT1=a)
        np.testing.assert_array_equal(outputs["OUTPUT0"], a * 2)
        np.testing.assert_array_equal(outputs["OUTPUT1"], a * 0)
        strings = manager.infer_runner("simple_identity")
        data = np.array([[b"x\x00", b"\xff"]], dtype=np.object_)
        assert list((await strings.infer(INPUT0=data))["OUTPUT0"][0]) == [b"x\x00", b"\xff"]


async def test_async_runner_checks_inputs_locally_with_the_servers_texts(url: str) -> None:
    async with RemoteManager(url) as manager:
        runner = manager.infer_runner("simple")
        with pytest.raises(InvalidArgument, match="missing required input\\(s\\) \\['INPUT1'\\]"):
            runner.infer(INPUT0=np.zeros((1, 16), np.int32))
        with pytest.raises(InvalidArgument, match="Expected \\[-1, 16\\], got \\[1, 8\\]"):
            runner.infer(INPUT0=np.zeros((1, 8), np.int32), INPUT1=np.zeros((1, 8), np.int32))
        with pytest.raises(UsageError, match="no ready model 'nope'"):
            manager.infer_runner("nope")
        with pytest.raises(
            InvalidArgument, match="data-type is 'FP64', but model 'simple' expects 'INT32'"
        ):
            runner.infer(INPUT0=np.full((1, 16), 1.9), INPUT1=np.zeros((1, 16), np.int32))
        with pytest.raises(InvalidArgument, match="input 'INPUT0' data-type is 'INT64'"):
            runner.infer(INPUT0=[list(range(16))], INPUT1=np.zeros((1, 16), np.int32))
        unknown_version = manager.infer_runner("simple", version="9")
        a = np.zeros((1, 16), np.int32)
        with pytest.raises(NotFound, match="version 9 is not found"):
            await unknown_version.infer(INPUT0=a, INPUT1=a)


def test_sync_manager_runs_many_in_flight(url: str) -> None:
    with SyncRemoteManager(url) as manager:
        runner = manager.infer_runner("custom_identity_int32")
        arrays = [np.arange(i + 1, dtype=np.int32).reshape(1, -1) for i in range(20)]
        futures = [runner.infer(INPUT0=a) for a in arrays]
        for array, future in zip(arrays, futures, strict=True):
            np.testing.assert_array_equal(future.result(10)["OUTPUT0"], array)


def _dead_address() -> str:
    with socket.socket() as probe:  # bound, never listening: connecting is refused
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


async def test_a_failed_connect_leaves_nothing_open_and_can_be_retried() -> None:
    manager = RemoteManager(_dead_address(), timeout=2)
    for _ in range(2):  # the retry fails the same way, not with "already connected"
        with pytest.raises(Unavailable):
            await manager.connect()
        assert manager._channel is None
    sync_manager = SyncRemoteManager(_dead_address(), timeout=2)
    for _ in range(2):
        with pytest.raises(Unavailable):
            sync_manager.connect()
        assert sync_manager._channel is None


def test_unconnected_manager_says_so() -> None:
    with pytest.raises(UsageError, match="connect"):
        SyncRemoteManager("127.0.0.1:1").get_models()


def _simple_only(folder: pathlib.Path) -> pathlib.Path:
    folder.mkdir()
    (folder / "simple").symlink_to(REPOSITORY / "simple")
    return folder


def _inference_count(address: str) -> int:
    with grpcclient.InferenceServerClient(address) as client:
        stats = client.get_inference_statistics("simple", as_json=True)
    return int(stats["model_stats"][0].get("inference_count", 0))


async def test_async_manager_round_robins_over_several_servers(tmp_path: pathlib.Path) -> None:
    repository = _simple_only(tmp_path / "models")
    factory = lambda: build_server(repository, grpc_port=0)  # noqa: E731
    with ThreadedServer(factory) as first, ThreadedServer(factory) as second:
        async with RemoteManager([first, second]) as manager:
            runner = manager.infer_runner("simple")
            a = np.ones((1, 16), np.int32)
            for _ in range(40):
                outputs = await runner.infer(INPUT0=a, INPUT1=a)
                np.testing.assert_array_equal(outputs["OUTPUT0"], a * 2)
        counts = [_inference_count(first), _inference_count(second)]
    assert sum(counts) == 40 and min(counts) >= 10, counts


def test_sync_manager_takes_several_servers(tmp_path: pathlib.Path) -> None:
    repository = _simple_only(tmp_path / "models")
    factory = lambda: build_server(repository, grpc_port=0)  # noqa: E731
    with ThreadedServer(factory) as first, ThreadedServer(factory) as second:
        with SyncRemoteManager(f"{first},{second}") as manager:
            runner = manager.infer_runner("simple")
            a = np.ones((1, 16), np.int32)
            for future in [runner.infer(INPUT0=a, INPUT1=a) for _ in range(30)]:
                np.testing.assert_array_equal(future.result(timeout=30)["OUTPUT1"], a * 0)
        counts = [_inference_count(first), _inference_count(second)]
    assert sum(counts) == 30 and min(counts) >= 5, counts
