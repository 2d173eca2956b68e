"""EngineBackend.load: a load that fails after the engine started leaves nothing running."""

from __future__ import annotations

import pathlib
import threading

import pytest

from asyncinfer.inference.backends.engine import EngineBackend
from asyncinfer.inference.backends.python import ModelLoadFailed
from asyncinfer.inference.modelconfig import parse_pbtxt

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
