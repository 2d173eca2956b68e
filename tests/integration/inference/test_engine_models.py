"""Engine-backed repository models: an ONNX model served through tritonclient, checked against
ONNX Runtime run directly; a TensorRT plan where TensorRT is missing fails only its own load."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from asyncinfer.engines import tensorrt_available
from asyncinfer.inference.app import build_server

from ...onnx_models import mlp_model
from .inference_servers import ThreadedServer

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

MLP_CONFIG = """
name: "{name}"
platform: "{platform}"
max_batch_size: 8
input [ {{ name: "features" data_type: TYPE_FP32 dims: [ 16 ] }} ]
output [ {{ name: "scores" data_type: TYPE_FP32 dims: [ 4 ] }} ]
instance_group [ {{ count: 2 kind: KIND_CPU }} ]
"""


def write_model(
    root: pathlib.Path,
    name: str,
    platform: str,
    filename: str,
    data: bytes,
    config: str = MLP_CONFIG,
) -> None:
    (root / name / "1").mkdir(parents=True)
    (root / name / "config.pbtxt").write_text(config.format(name=name, platform=platform))
    (root / name / "1" / filename).write_bytes(data)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, Any]:
    root = tmp_path_factory.mktemp("engine-repo")
    model, reference = mlp_model(seed=4)
    write_model(root, "mlp_onnx", "onnxruntime_onnx", "model.onnx", model)
    write_model(root, "mlp_plan", "tensorrt_plan", "model.plan", b"not a plan")
    wrong = MLP_CONFIG.replace("dims: [ 4 ]", "dims: [ 5 ]")
    write_model(root, "mlp_wrong_dims", "onnxruntime_onnx", "model.onnx", model, wrong)
    return root, reference


@pytest.fixture(scope="module")
def client(repository: tuple[pathlib.Path, Any]) -> Iterator[grpcclient.InferenceServerClient]:
    with ThreadedServer(lambda: build_server(repository[0], grpc_port=0)) as url:
        yield grpcclient.InferenceServerClient(url)


def test_onnx_model_matches_onnxruntime(
    client: grpcclient.InferenceServerClient, repository: tuple[pathlib.Path, Any]
) -> None:
    features = np.random.default_rng(9).standard_normal((5, 16)).astype(np.float32)
    infer_input = grpcclient.InferInput("features", list(features.shape), "FP32")
    infer_input.set_data_from_numpy(features)
    result = client.infer("mlp_onnx", [infer_input])
    session = ort.InferenceSession(
        str(repository[0] / "mlp_onnx" / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (expected,) = session.run(None, {"features": features})
    np.testing.assert_allclose(result.as_numpy("scores"), expected, rtol=1e-5, atol=1e-5)
    metadata = client.get_model_metadata("mlp_onnx")
    assert [i.name for i in metadata.inputs] == ["features"]


def test_bad_shape_is_invalid_argument_and_the_model_keeps_serving(
    client: grpcclient.InferenceServerClient,
) -> None:
    bad = grpcclient.InferInput("features", [2, 15], "FP32")
    bad.set_data_from_numpy(np.zeros((2, 15), np.float32))
    with pytest.raises(InferenceServerException) as info:
        client.infer("mlp_onnx", [bad])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    good = grpcclient.InferInput("features", [1, 16], "FP32")
    good.set_data_from_numpy(np.ones((1, 16), np.float32))
    assert client.infer("mlp_onnx", [good]).as_numpy("scores").shape == (1, 4)


def test_config_that_contradicts_the_model_file_fails_its_load(
    client: grpcclient.InferenceServerClient,
) -> None:
    assert client.is_model_ready("mlp_wrong_dims") is False
    reasons = {m.name: m.reason for m in client.get_model_repository_index().models}
    assert "output 'scores' has shape [-1, 4] in the model file" in reasons["mlp_wrong_dims"]


@pytest.mark.skipif(tensorrt_available() is None, reason="TensorRT is installed: error path")
def test_tensorrt_plan_without_tensorrt_fails_only_its_own_load(
    client: grpcclient.InferenceServerClient,
) -> None:
    assert client.is_model_ready("mlp_plan") is False
    reasons = {m.name: m.reason for m in client.get_model_repository_index().models}
    assert "TensorRT is not installed" in reasons["mlp_plan"]
    assert client.is_model_ready("mlp_onnx")
