"""Example 08 runs: its server in a subprocess on port 0 serving both forms of example 02's
classifier; FlatBuffers replies match ONNX Runtime run directly and the protobuf form; bad
tensors and malformed buffers say what was wrong; its client script runs a short siege."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from asyncinfer import codecs
from asyncinfer.client import AsyncClient, Method, SyncClient
from asyncinfer.errors import InvalidArgument
from asyncinfer.testing import ServerProcess

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
pytest.importorskip("onnx", reason="the onnx package is not installed")

from . import test_02_custom_inference as example_02

# Example 02's test's model cache (a module fixture) and its ONNX Runtime reference.
cache = example_02.cache
direct = example_02.direct

EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "08_flatbuffers"
sys.path.insert(0, str(EXAMPLE))
flat_classifier_pb2 = grpc.protos("flat_classifier.proto")  # type: ignore[attr-defined]
DESCRIPTOR = flat_classifier_pb2.DESCRIPTOR.services_by_name["FlatClassifier"].methods_by_name[
    "Classify"
]
CLASSIFY = Method.of(DESCRIPTOR, codec=codecs.FLATBUFFERS)
CLASSIFY_RAW = Method.of(DESCRIPTOR, codec=codecs.RAW)  # to send malformed buffers


@pytest.fixture(scope="module")
def server(cache: pathlib.Path) -> Iterator[ServerProcess]:
    argv = [sys.executable, str(EXAMPLE / "server.py"), "--port", "0", "--cache-dir", str(cache)]
    with ServerProcess(argv, timeout=60) as process:
        yield process


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_flatbuffers_replies_match_onnxruntime(
    server: ServerProcess, cache: pathlib.Path, batch: int
) -> None:
    features = np.random.default_rng(batch).standard_normal((batch, 16)).astype("<f4")
    with SyncClient(server.address, CLASSIFY) as client:
        reply = client.call({"features": features})
    expected = direct(cache, features)
    assert reply["probabilities"].dtype == np.float32 and reply["probabilities"].shape == (batch, 4)
    np.testing.assert_allclose(reply["probabilities"], expected, rtol=1e-5, atol=1e-6)
    assert reply["labels"].tolist() == expected.argmax(axis=1).tolist()


async def test_bad_tensors_and_buffers_say_what_was_wrong(server: ServerProcess) -> None:
    async with AsyncClient(server.address, CLASSIFY) as client:
        with pytest.raises(InvalidArgument, match=r"send one tensor, 'features'; got \['x'\]"):
            await client.call({"x": np.zeros((1, 16), "<f4")})
        with pytest.raises(InvalidArgument, match=r"shape \[0, 16\]; it must be \[batch, 16\]"):
            await client.call({"features": np.zeros((0, 16), "<f4")})
        with pytest.raises(InvalidArgument, match="features"):
            await client.call({"features": np.zeros((2, 16), "<f8")})  # the engine's check
    async with AsyncClient(server.address, CLASSIFY_RAW) as raw:
        with pytest.raises(InvalidArgument, match=r"Classify: bad request: buffer has 3 bytes"):
            await raw.call(b"abc")
    async with AsyncClient(server.address, CLASSIFY) as client:  # still serving
        reply = await client.call({"features": np.zeros((2, 16), "<f4")})
    assert reply["labels"].shape == (2,)


def test_client_script_compares_both_forms_and_runs_a_short_siege(server: ServerProcess) -> None:
    argv = [
        sys.executable, str(EXAMPLE / "client.py"), server.address,
        "--batch", "4", "--rate", "50", "--seconds", "1",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].endswith("protobuf form agrees")
    assert lines[-1].startswith("[siege]") and " ok in " in lines[-1]


def test_cli_calls_the_flatbuffers_form_from_json(server: ServerProcess) -> None:
    request = (
        '{"tensors": [{"name": "features", "datatype": "FP32", "shape": [1, 16], '
        '"data": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]}]}'
    )
    done = subprocess.run(
        [sys.executable, "-m", "asyncinfer.cli", "sync", server.address,
         "/asyncinfer.examples.flatbuffers.FlatClassifier/Classify", "--codec", "flatbuffers",
         "--request", request, "--count", "10"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "[sync] 10/10 ok" in done.stdout
