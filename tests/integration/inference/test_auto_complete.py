"""Config auto-complete through tritonclient: ONNX models with no config (or one naming no
inputs) completed from the model file's signature, ModelConfig showing the result, a tensor of
unknown rank refused with a clear reason, and ``auto_complete=False``
(--disable-auto-complete-config) turning it off."""

from __future__ import annotations

import pathlib
import shutil
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from asyncinfer.inference.app import build_server

from .inference_servers import REPOSITORY, ThreadedServer

onnx = pytest.importorskip("onnx", reason="the onnx package builds the test's ONNX model")


def _unknown_rank_model(path: pathlib.Path) -> None:
    """An ONNX Identity whose input and output declare no shape at all."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "unknown_rank",
        [helper.make_tensor_value_info("x", TensorProto.INT32, None)],
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True)
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("auto_complete")
    onnx_file = REPOSITORY / "mlp_onnx" / "1" / "model.onnx"
    (root / "mlp_no_config" / "1").mkdir(parents=True)
    shutil.copy(onnx_file, root / "mlp_no_config" / "1" / "model.onnx")
    (root / "mlp_platform_only" / "1").mkdir(parents=True)
    shutil.copy(onnx_file, root / "mlp_platform_only" / "1" / "model.onnx")
    (root / "mlp_platform_only" / "config.pbtxt").write_text('platform: "onnxruntime_onnx"\n')
    _unknown_rank_model(root / "unknown_rank" / "1" / "model.onnx")
    return root


@pytest.fixture(scope="module")
def client(repository: pathlib.Path) -> Iterator[grpcclient.InferenceServerClient]:
    with (
        ThreadedServer(lambda: build_server(repository, grpc_port=0)) as url,
        grpcclient.InferenceServerClient(url) as client,
    ):
        yield client


@pytest.mark.parametrize("name", ["mlp_no_config", "mlp_platform_only"])
def test_onnx_model_is_completed_from_its_signature(
    client: grpcclient.InferenceServerClient, name: str
) -> None:
    config = client.get_model_config(name, as_json=True)["config"]
    assert config["name"] == name
    assert config["max_batch_size"] == 4  # every tensor's first dimension is "batch"
    assert "dynamic_batching" in config
    assert [(t["name"], t["data_type"], t["dims"]) for t in config["input"]] == [
        ("features", "TYPE_FP32", ["256"])
    ]
    assert [(t["name"], t["data_type"], t["dims"]) for t in config["output"]] == [
        ("scores", "TYPE_FP32", ["16"])
    ]
    features = grpcclient.InferInput("features", [2, 256], "FP32")
    features.set_data_from_numpy(np.ones((2, 256), np.float32))
    assert client.infer(name, [features]).as_numpy("scores").shape == (2, 16)


def test_input_of_unknown_rank_fails_the_load_saying_to_declare_it(
    client: grpcclient.InferenceServerClient,
) -> None:
    reasons = {m.name: m.reason for m in client.get_model_repository_index().models}
    assert not client.is_model_ready("unknown_rank")
    assert "tensor 'x' has no shape (unknown rank)" in reasons["unknown_rank"]
    assert "declare its inputs and outputs in config.pbtxt" in reasons["unknown_rank"]
    assert client.is_model_ready("mlp_no_config")


def test_disabled_auto_complete_loads_configs_as_written(repository: pathlib.Path) -> None:
    factory = lambda: build_server(repository, grpc_port=0, auto_complete=False)  # noqa: E731
    with ThreadedServer(factory) as url, grpcclient.InferenceServerClient(url) as client:
        reasons = {m.name: m.reason for m in client.get_model_repository_index().models}
        assert not client.is_model_ready("mlp_no_config")
        assert "config.pbtxt does not exist" in reasons["mlp_no_config"]
        assert not client.is_model_ready("mlp_platform_only")
        assert "declares no outputs" in reasons["mlp_platform_only"]
