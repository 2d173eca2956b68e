"""Example 02 runs: its server in a subprocess on port 0, called over gRPC, checked against
ONNX Runtime run directly on the same generated model."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from asyncinfer.client import AsyncClient, Method, SyncClient
from asyncinfer.errors import InvalidArgument
from asyncinfer.testing import ServerProcess
from tests.protos import custom_inference_pb2

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
pytest.importorskip("onnx", reason="the onnx package is not installed")

EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "02_custom_inference"
CLASSIFY = Method.of(
    custom_inference_pb2.DESCRIPTOR.services_by_name["Classifier"].methods_by_name["Classify"]
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def server(cache: pathlib.Path) -> Iterator[ServerProcess]:
    argv = [sys.executable, str(EXAMPLE / "server.py"), "--port", "0", "--cache-dir", str(cache)]
    with ServerProcess(argv, timeout=60) as process:
        yield process


def direct(cache: pathlib.Path, features: np.ndarray) -> np.ndarray:
    (model,) = cache.glob("*.onnx")
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(None, {"features": features})
    return probabilities  # type: ignore[no-any-return]


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_replies_match_onnxruntime(server: ServerProcess, cache: pathlib.Path, batch: int) -> None:
    features = np.random.default_rng(batch).standard_normal((batch, 16)).astype("<f4")
    with SyncClient(server.address, CLASSIFY) as client:
        reply = client.call(
            custom_inference_pb2.ClassifyRequest(features=features.tobytes(), batch=batch)
        )
    got = np.frombuffer(reply.probabilities, dtype="<f4").reshape(batch, 4)
    expected = direct(cache, features)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert list(reply.labels) == expected.argmax(axis=1).tolist()


async def test_bad_requests_say_what_was_wrong_and_the_server_keeps_serving(
    server: ServerProcess,
) -> None:
    good = custom_inference_pb2.ClassifyRequest(
        features=np.zeros((2, 16), "<f4").tobytes(), batch=2
    )
    async with AsyncClient(server.address, CLASSIFY) as client:
        with pytest.raises(InvalidArgument, match=r"batch is 0; it must be 1\.\.64"):
            await client.call(custom_inference_pb2.ClassifyRequest(batch=0))
        with pytest.raises(InvalidArgument, match="features has 60 bytes; batch 1 x 16 float32"):
            await client.call(custom_inference_pb2.ClassifyRequest(features=b"\0" * 60, batch=1))
        replies = [await client.call(good) for _ in range(3)]
    assert all(len(reply.labels) == 2 for reply in replies)


def test_client_script_runs_a_short_siege(server: ServerProcess) -> None:
    argv = [
        sys.executable,
        str(EXAMPLE / "client.py"),
        server.address,
        "--batch",
        "4",
        "--rate",
        "50",
        "--seconds",
        "1",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("[siege]") and " ok in " in summary
