"""Example 04 runs: Model A -> glue -> Model B, with deadlines passed downstream and a client's
cancellation reaching the model the glue is waiting on."""

from __future__ import annotations

import asyncio
import importlib.util
import pathlib
import runpy
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from asyncinfer.client import AsyncClient, ChannelPool, Method
from asyncinfer.errors import DeadlineExceeded, InvalidArgument, UsageError
from asyncinfer.testing import ServerProcess, running
from tests.protos import chain_pb2

ort = pytest.importorskip("onnxruntime", reason="Model B runs an ONNX model")

EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "04_chain"
CLASSIFY = Method.of(chain_pb2.DESCRIPTOR.services_by_name["Glue"].methods_by_name["Classify"])


def load_services() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chain_services", EXAMPLE / "services.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


services = load_services()


@pytest.fixture(scope="module", autouse=True)
def classifier_model() -> None:
    """Model B's ONNX file (`make models`), built once if missing."""
    pytest.importorskip("onnx", reason="the onnx package builds Model B's model file")
    runpy.run_path(str(EXAMPLE.parent / "build_models.py"))["build_all"](quiet=True)


def images(batch: int, delay_ms: int = 0) -> tuple[np.ndarray, chain_pb2.Images]:
    pixels = (np.arange(batch * 16, dtype=np.uint8) * 11).reshape(batch, 16)
    return pixels, chain_pb2.Images(pixels=pixels.tobytes(), batch=batch, model_a_delay_ms=delay_ms)


class Chain:
    def __init__(self, model_a: Any, glue: Any, address: str) -> None:
        self.model_a = model_a
        self.glue = glue
        self.address = address

    @property
    def a(self) -> Any:
        return self.model_a._services["asyncinfer.examples.chain.ModelA"].resources


@pytest.fixture
async def chain() -> AsyncIterator[Chain]:
    model_a, model_b = services.build_model_a(), services.build_model_b()
    async with running(model_a) as a, running(model_b) as b:
        glue = services.build_glue(a, b)
        async with running(glue) as address:
            yield Chain(model_a, glue, address)


async def until(predicate: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(10):
        while not predicate():  # noqa: ASYNC110 (polling counters the servers keep)
            await asyncio.sleep(0.01)
    assert predicate(), what


async def test_the_glue_answers_what_the_models_compute(chain: Chain) -> None:
    pixels, request = images(3)
    async with AsyncClient(chain.address, CLASSIFY) as client:
        reply = await client.call(request)
    features = (pixels.astype(np.float32) / 255 - 0.5) / 0.25
    session = ort.InferenceSession(str(services.CLASSIFIER), providers=["CPUExecutionProvider"])
    (scores,) = session.run(["scores"], {"features": features})
    expected = np.exp(scores - scores.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    got = np.frombuffer(reply.probabilities, np.float32).reshape(3, 4)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert list(reply.labels) == [services.LABELS[i] for i in expected.argmax(axis=1)]
    pools = chain.glue.statistics().resources["asyncinfer.examples.chain.Glue"]
    assert pools["model_a"]["calls"] == 1 and pools["model_b"]["calls"] == 1


async def test_the_callers_deadline_is_passed_downstream(chain: Chain) -> None:
    async with AsyncClient(chain.address, CLASSIFY) as client:
        reply = await client.call(images(1)[1], timeout=3.0)
        # Model A saw the client's deadline, not the pool's 10 s default (grpc encodes
        # timeouts on the wire with limited precision, rounding them up a little).
        assert 0 < reply.model_a_deadline_remaining_s <= 3.2
        # A deadline shorter than Model A's work: the client gets DEADLINE_EXCEEDED and Model A's
        # call is ended by the same deadline instead of running its 5 s.
        with pytest.raises(DeadlineExceeded):
            await client.call(images(1, delay_ms=5000)[1], timeout=0.3)
    await until(lambda: chain.a.cancelled == 1, "Model A's call was cancelled")


async def test_a_client_cancelling_the_glue_cancels_the_call_to_model_a(chain: Chain) -> None:
    async with AsyncClient(chain.address, CLASSIFY, timeout=30.0) as client:
        call = asyncio.create_task(client.call(images(1, delay_ms=20_000)[1]))
        await until(lambda: chain.a.started == 1, "Model A's call started")
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await until(lambda: chain.a.cancelled == 1, "Model A's call was cancelled")
        glue_rpc = chain.glue.statistics().rpcs["/asyncinfer.examples.chain.Glue/Classify"]
        await until(
            lambda: chain.glue.statistics().rpcs[glue_rpc.name].cancelled == 1, "glue cancelled"
        )
        # Both go on serving.
        reply = await client.call(images(2)[1])
        assert len(reply.labels) == 2
    assert chain.glue.statistics().rpcs[glue_rpc.name].in_flight == 0


async def test_a_downstream_status_reaches_the_client_with_its_message(chain: Chain) -> None:
    async with AsyncClient(chain.address, CLASSIFY) as client:
        with pytest.raises(InvalidArgument, match=r"pixels: expected 32 bytes"):
            await client.call(chain_pb2.Images(pixels=b"\x00" * 5, batch=2))


async def test_a_pool_must_be_opened_before_calls() -> None:
    pool = ChannelPool("127.0.0.1:1", size=2)
    with pytest.raises(UsageError, match="not open"):
        await pool.call(CLASSIFY, chain_pb2.Images())
    with pytest.raises(UsageError, match="size >= 1"):
        ChannelPool("127.0.0.1:1", size=0)


def test_the_example_runs_as_scripts() -> None:
    argv = [sys.executable, str(EXAMPLE / "chain.py"), "--port", "0"]
    with ServerProcess(argv, timeout=60) as process:
        done = subprocess.run(
            [sys.executable, str(EXAMPLE / "client.py"), process.address, "--calls", "40"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "40/40 ok" in done.stdout
        assert sum(line.split()[0] in services.LABELS for line in done.stdout.splitlines()) == 4
        assert process.stop() == 0
