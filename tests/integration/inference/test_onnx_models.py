"""The onnxruntime backend through tritonclient: densenet_onnx (class_count), the batched MLP,
the model-control repository's ONNX models, and per-model statistics under batching."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException

from .inference_servers import EXPLICIT_REPOSITORY, REPOSITORY

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")


def reference(model_dir: str, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The graph run by ONNX Runtime directly."""
    path = REPOSITORY / model_dir / "1" / "model.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)  # type: ignore[no-any-return]


@pytest.fixture
def client(url: str) -> Iterator[grpcclient.InferenceServerClient]:
    with grpcclient.InferenceServerClient(url) as client:
        yield client


def _input(name: str, array: np.ndarray) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, list(array.shape), "FP32")
    tensor.set_data_from_numpy(array)
    return tensor


def test_densenet_signature_is_tritons(client: grpcclient.InferenceServerClient) -> None:
    metadata = client.get_model_metadata("densenet_onnx")
    assert metadata.platform == "onnxruntime_onnx"
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        ("data_0", "FP32", [3, 224, 224])
    ]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [
        ("fc6_1", "FP32", [1000])
    ]


def test_densenet_scores_match_onnx_runtime(client: grpcclient.InferenceServerClient) -> None:
    image = np.random.default_rng(1).random((3, 224, 224), dtype=np.float32)
    result = client.infer("densenet_onnx", [_input("data_0", image)])
    (expected,) = reference("densenet_onnx", {"data_0": image})
    np.testing.assert_allclose(result.as_numpy("fc6_1"), expected, rtol=1e-5, atol=1e-6)


def test_densenet_class_count_gives_top_labels(client: grpcclient.InferenceServerClient) -> None:
    image = np.random.default_rng(2).random((3, 224, 224), dtype=np.float32)
    output = grpcclient.InferRequestedOutput("fc6_1", class_count=3)
    result = client.infer("densenet_onnx", [_input("data_0", image)], outputs=[output])
    (scores,) = reference("densenet_onnx", {"data_0": image})
    top = np.argsort(-scores)[:3]
    entries = [entry.decode().split(":") for entry in result.as_numpy("fc6_1")]
    assert [int(index) for _, index, _ in entries] == top.tolist()
    assert [label for _, _, label in entries] == [f"CLASS_{i:04d}" for i in top]
    np.testing.assert_allclose([float(v) for v, _, _ in entries], scores[top], rtol=1e-5)


def test_densenet_wrong_shape_is_invalid_argument_and_server_keeps_serving(
    client: grpcclient.InferenceServerClient,
) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.infer("densenet_onnx", [_input("data_0", np.zeros((3, 224, 223), np.float32))])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "data_0" in info.value.message()
    image = np.zeros((3, 224, 224), np.float32)
    assert client.infer("densenet_onnx", [_input("data_0", image)]).as_numpy("fc6_1").shape == (
        1000,
    )


def test_mlp_config_has_dynamic_batching(client: grpcclient.InferenceServerClient) -> None:
    config = client.get_model_config("mlp_onnx", as_json=True)["config"]
    assert config["platform"] == "onnxruntime_onnx"
    assert config["dynamic_batching"]["preferred_batch_size"] == [32]


def test_mlp_batch_matches_onnx_runtime(client: grpcclient.InferenceServerClient) -> None:
    features = np.random.default_rng(3).standard_normal((5, 256)).astype(np.float32)
    result = client.infer("mlp_onnx", [_input("features", features)])
    (expected,) = reference("mlp_onnx", {"features": features})
    np.testing.assert_allclose(result.as_numpy("scores"), expected, rtol=1e-4, atol=1e-5)


def test_mlp_priority_out_of_range_is_invalid_argument(
    client: grpcclient.InferenceServerClient,
) -> None:
    features = np.zeros((1, 256), np.float32)
    with pytest.raises(InferenceServerException) as info:
        client.infer("mlp_onnx", [_input("features", features)], priority=4)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "mlp_onnx" in info.value.message() and "priority" in info.value.message()


def test_mlp_timeout_override_not_allowed_is_invalid_argument(
    client: grpcclient.InferenceServerClient,
) -> None:
    features = np.zeros((1, 256), np.float32)
    with pytest.raises(InferenceServerException) as info:
        client.infer("mlp_onnx", [_input("features", features)], timeout=1000)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "timeout override" in info.value.message()


async def test_concurrent_requests_get_their_own_rows_and_statistics_add_up(url: str) -> None:
    rng = np.random.default_rng(4)
    batches = [
        rng.standard_normal((int(rng.integers(1, 4)), 256)).astype(np.float32) for _ in range(40)
    ]
    async with aioclient.InferenceServerClient(url) as client:
        before = await client.get_inference_statistics("mlp_onnx", as_json=True)

        async def call(features: np.ndarray) -> Any:
            tensor = aioclient.InferInput("features", list(features.shape), "FP32")
            tensor.set_data_from_numpy(features)
            return (await client.infer("mlp_onnx", [tensor])).as_numpy("scores")

        answers = await asyncio.gather(*(call(features) for features in batches))
        after = await client.get_inference_statistics("mlp_onnx", as_json=True)
    for features, answer in zip(batches, answers, strict=True):
        (expected,) = reference("mlp_onnx", {"features": features})
        np.testing.assert_allclose(answer, expected, rtol=1e-4, atol=1e-5)
    delta = _delta(before, after)
    items = sum(len(features) for features in batches)
    assert delta["success"] == len(batches)
    assert delta["inference_count"] == items
    assert delta["batched_items"] == items  # every item ran in exactly one execution
    assert delta["execution_count"] == delta["batch_executions"]
    assert 1 <= delta["execution_count"] <= len(batches)


def _delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    def counts(stats: dict[str, Any]) -> dict[str, int]:
        (model,) = stats["model_stats"]
        batch_stats = model.get("batch_stats", [])
        return {
            "success": int(model["inference_stats"]["success"].get("count", 0)),
            "inference_count": int(model.get("inference_count", 0)),
            "execution_count": int(model.get("execution_count", 0)),
            "batch_executions": sum(int(b["compute_infer"]["count"]) for b in batch_stats),
            "batched_items": sum(
                int(b["batch_size"]) * int(b["compute_infer"]["count"]) for b in batch_stats
            ),
        }

    first, second = counts(before), counts(after)
    return {key: second[key] - first[key] for key in first}


@pytest.mark.parametrize(
    ("name", "input_name", "shape", "output_name", "classes"),
    [
        ("densenet_onnx", "data_0", (3, 224, 224), "fc6_1", 1000),
        ("inception_onnx", "input", (299, 299, 3), "InceptionV3/Predictions/Softmax", 1001),
    ],
)
def test_model_control_repository_onnx_models_load_and_infer(
    explicit_url: str,
    name: str,
    input_name: str,
    shape: tuple[int, ...],
    output_name: str,
    classes: int,
) -> None:
    assert (EXPLICIT_REPOSITORY / name / "1" / "model.onnx").is_file()
    with grpcclient.InferenceServerClient(explicit_url) as client:
        client.load_model(name)
        assert client.is_model_ready(name)
        image = np.ones(shape, np.float32)
        output = grpcclient.InferRequestedOutput(output_name, class_count=2)
        result = client.infer(name, [_input(input_name, image)], outputs=[output])
        assert len(result.as_numpy(output_name)) == 2
        plain = client.infer(name, [_input(input_name, image)])
        assert plain.as_numpy(output_name).shape == (classes,)
        client.unload_model(name)
        assert not client.is_model_ready(name)
