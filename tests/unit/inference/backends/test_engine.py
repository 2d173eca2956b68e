"""EngineBackend: a load that fails after the engine started leaves nothing running; batches run
through ONNX Runtime in one call and split back per request."""

from __future__ import annotations

import asyncio
import pathlib
import threading
from typing import Any

import numpy as np
import pytest

from asyncinfer.errors import InvalidArgument, ModelLoadFailed
from asyncinfer.inference.backends.engine import EngineBackend
from asyncinfer.inference.python_model import Request
from asyncinfer.inference.repository.model_config import parse_pbtxt
from asyncinfer.inference.scheduling import make_scheduler
from asyncinfer.inference.statistics import ModelStats

from ....onnx_models import mlp_model

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

CONFIG = """
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [
  {{ name: "a" data_type: {dtype} dims: [ 4 ] }},
  {{ name: "b" data_type: TYPE_FP32 dims: [ 4 ] }}
]
output [ {{ name: "c" data_type: TYPE_FP32 dims: [ 4 ] }} ]
"""


def _engine_threads(name: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(f"{name}-ort")]


def _version_dir(root: pathlib.Path, model: bytes) -> pathlib.Path:
    version = root / "1"
    version.mkdir(parents=True)
    (version / "model.onnx").write_bytes(model)
    return version


async def test_a_signature_mismatch_stops_the_started_engine(
    tmp_path: pathlib.Path, add_onnx: bytes
) -> None:
    config = parse_pbtxt(CONFIG.format(name="mismatch", dtype="TYPE_INT32"), model="mismatch")
    version_dir = _version_dir(tmp_path, add_onnx)
    with pytest.raises(ModelLoadFailed, match="input 'a' is FP32 in the model file, INT32"):
        await EngineBackend.load(config, 1, version_dir, tmp_path)
    assert _engine_threads("mismatch") == []


async def test_a_model_file_that_does_not_load_stops_the_engine(tmp_path: pathlib.Path) -> None:
    config = parse_pbtxt(CONFIG.format(name="garbage", dtype="TYPE_FP32"), model="garbage")
    version_dir = _version_dir(tmp_path, b"not an onnx model")
    with pytest.raises(ModelLoadFailed, match="cannot load its model"):
        await EngineBackend.load(config, 1, version_dir, tmp_path)
    assert _engine_threads("garbage") == []


async def test_a_good_load_runs_until_unload(tmp_path: pathlib.Path, add_onnx: bytes) -> None:
    config = parse_pbtxt(CONFIG.format(name="good", dtype="TYPE_FP32"), model="good")
    backend = await EngineBackend.load(config, 1, _version_dir(tmp_path, add_onnx), tmp_path)
    assert _engine_threads("good")
    await backend.unload()
    assert _engine_threads("good") == []


def _repository(tmp_path: pathlib.Path) -> tuple[pathlib.Path, Any]:
    body, reference = mlp_model()
    version = tmp_path / "mlp" / "1"
    version.mkdir(parents=True)
    (version / "model.onnx").write_bytes(body)
    return version, reference


MLP_CONFIG = """
name: "mlp"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "features" data_type: TYPE_FP32 dims: [ 16 ] } ]
output [ { name: "scores" data_type: TYPE_FP32 dims: [ 4 ] } ]
"""


async def test_onnx_backend_runs_a_batch_in_one_call_and_splits_it(tmp_path: pathlib.Path) -> None:
    version, reference = _repository(tmp_path)
    config = parse_pbtxt(MLP_CONFIG + "instance_group [ { count: 2 kind: KIND_CPU } ]", model="mlp")
    backend = await EngineBackend.load(config, 1, version, tmp_path)
    try:
        assert backend.instance_count == 2
        rng = np.random.default_rng(0)
        arrays = [rng.standard_normal((n, 16)).astype(np.float32) for n in (1, 3, 2)]
        responses = await backend.execute([Request({"features": a}) for a in arrays])
        for array, response in zip(arrays, responses, strict=True):
            assert response is not None
            np.testing.assert_allclose(
                response.outputs()["scores"],
                reference(array),
                rtol=1e-4,
                atol=1e-5,
            )
        assert backend.engine.statistics()["calls"] == 1
    finally:
        await backend.unload()


async def test_onnx_backend_through_the_dynamic_batcher(tmp_path: pathlib.Path) -> None:
    version, reference = _repository(tmp_path)
    config = parse_pbtxt(MLP_CONFIG + "dynamic_batching { }", model="mlp")
    backend = await EngineBackend.load(config, 1, version, tmp_path)
    stats = ModelStats()
    scheduler = make_scheduler(config, backend, stats)
    await scheduler.start()
    try:
        array = np.ones((2, 16), np.float32)
        response = await scheduler.submit(Request({"features": array}))
        assert response is not None
        np.testing.assert_allclose(
            response.outputs()["scores"],
            reference(array),
            rtol=1e-4,
            atol=1e-5,
        )
        assert stats.execution_count == 1 and list(stats.batches) == [2]
    finally:
        await scheduler.stop()
        await backend.unload()


async def test_a_merged_batch_reports_its_input_and_output_durations(
    tmp_path: pathlib.Path,
) -> None:
    version, reference = _repository(tmp_path)
    config = parse_pbtxt(
        MLP_CONFIG + "dynamic_batching { max_queue_delay_microseconds: 200000 }", model="mlp"
    )
    backend = await EngineBackend.load(config, 1, version, tmp_path)
    stats = ModelStats()
    scheduler = make_scheduler(config, backend, stats)
    await scheduler.start()
    try:
        arrays = [np.full((n, 16), n, np.float32) for n in (1, 2, 3)]
        answers = await asyncio.gather(
            *(scheduler.submit(Request({"features": a})) for a in arrays)
        )
        for array, answer in zip(arrays, answers, strict=True):
            assert answer is not None
            np.testing.assert_allclose(
                answer.outputs()["scores"],
                reference(array),
                rtol=1e-4,
                atol=1e-5,
            )
        assert list(stats.batches) == [6] and stats.execution_count == 1
        durations = stats.batches[6]
        assert durations.compute_input.count == durations.compute_output.count == 1
        assert durations.compute_input.ns > 0 and durations.compute_output.ns > 0
    finally:
        await scheduler.stop()
        await backend.unload()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('"features"', '"feats"'), "no input 'feats' that config.pbtxt declares"),
        (("TYPE_FP32 dims: [ 16 ]", "TYPE_INT32 dims: [ 16 ]"), "FP32 in the model file, INT32"),
        (("dims: [ 16 ]", "dims: [ 15 ]"), r"declares \[-1, 15\]"),
        (("max_batch_size: 8", "max_batch_size: 0"), r"declares \[16\]"),
    ],
)
async def test_onnx_config_that_does_not_match_the_graph_fails_the_load(
    tmp_path: pathlib.Path, change: tuple[str, str], message: str
) -> None:
    version, _ = _repository(tmp_path)
    config = parse_pbtxt(MLP_CONFIG.replace(*change), model="mlp")
    with pytest.raises(ModelLoadFailed, match=f"failed to load 'mlp'.*{message}"):
        await EngineBackend.load(config, 1, version, tmp_path)


async def test_onnx_missing_file_and_gpu_kind_fail_the_load(tmp_path: pathlib.Path) -> None:
    config = parse_pbtxt(MLP_CONFIG, model="mlp")
    with pytest.raises(ModelLoadFailed, match=r"model.onnx does not exist.*make models"):
        await EngineBackend.load(config, 1, tmp_path, tmp_path)
    version, _ = _repository(tmp_path)
    gpu = parse_pbtxt(MLP_CONFIG + "instance_group [ { kind: KIND_GPU } ]", model="mlp")
    with pytest.raises(ModelLoadFailed, match="KIND_GPU is not supported"):
        await EngineBackend.load(gpu, 1, version, tmp_path)


async def test_onnx_backend_rejects_inputs_the_graph_does_not_take(tmp_path: pathlib.Path) -> None:
    version, _ = _repository(tmp_path)
    backend = await EngineBackend.load(parse_pbtxt(MLP_CONFIG, model="mlp"), 1, version, tmp_path)
    try:
        with pytest.raises(InvalidArgument, match="features"):
            await backend.execute([Request({"features": np.ones((1, 15), np.float32)})])
    finally:
        await backend.unload()
