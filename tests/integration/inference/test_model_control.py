"""Model control (TRITON-COMPAT Part B.13) on the explicit-mode repository, plus the other
control modes: none refuses load/unload, poll picks up changes on disk."""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from asyncinfer.inference.app import build_server

from .inference_servers import EXPLICIT_REPOSITORY, ThreadedServer

EXPLICIT_MODELS = [
    "densenet_onnx",
    "inception_onnx",
    "simple",
    "simple_dyna_sequence",
    "simple_identity",
    "simple_int8",
    "simple_sequence",
    "simple_string",
]


@pytest.fixture
def client(explicit_url: str) -> Iterator[grpcclient.InferenceServerClient]:
    with grpcclient.InferenceServerClient(explicit_url) as client:
        yield client


def _add(client: grpcclient.InferenceServerClient) -> Any:
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    inputs = []
    for name in ("INPUT0", "INPUT1"):
        tensor = grpcclient.InferInput(name, [1, 16], "INT32")
        tensor.set_data_from_numpy(a)
        inputs.append(tensor)
    return client.infer("simple", inputs).as_numpy("OUTPUT0")


def test_index_lists_exactly_eight_models_none_loaded(
    client: grpcclient.InferenceServerClient,
) -> None:
    index = client.get_model_repository_index().models
    assert sorted(m.name for m in index) == EXPLICIT_MODELS
    assert not client.is_model_ready("simple")
    assert client.get_model_repository_index(as_json=True).get("models")


def test_load_infer_unload(client: grpcclient.InferenceServerClient) -> None:
    client.load_model("simple")
    assert client.is_model_ready("simple")
    np.testing.assert_array_equal(_add(client), np.arange(16).reshape(1, 16) * 2)
    with pytest.raises(InferenceServerException) as info:
        client.is_model_ready("simple", "abc")
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "failed to get model version from specified version string" in info.value.message()
    client.unload_model("simple")
    assert client.is_model_ready("simple") is False
    states = {m.name: (m.state, m.reason) for m in client.get_model_repository_index().models}
    assert states["simple"] == ("UNAVAILABLE", "unloaded")


def test_load_with_json_config_override(client: grpcclient.InferenceServerClient) -> None:
    client.load_model("simple", config=json.dumps({"max_batch_size": "16"}))
    assert client.get_model_config("simple").config.max_batch_size == 16
    assert client.is_model_ready("simple")


def test_load_with_invalid_json_fails(client: grpcclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.load_model("simple", config="{not json")
    assert "failed to load" in info.value.message()


def test_load_unknown_model_fails(client: grpcclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.load_model("no_such_model")
    assert "failed to load" in info.value.message()
    # The failed load leaves no trace: the index lists the repository's folders only.
    assert sorted(m.name for m in client.get_model_repository_index().models) == EXPLICIT_MODELS
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata("no_such_model")
    assert info.value.status() == "StatusCode.NOT_FOUND"


def test_load_later_feature_model_says_not_supported_yet(
    client: grpcclient.InferenceServerClient,
) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.load_model("simple", config=json.dumps({"ensemble_scheduling": {}}))
    assert "failed to load" in info.value.message()
    assert "not supported yet" in info.value.message()


def test_sequence_models_load_and_serve(client: grpcclient.InferenceServerClient) -> None:
    for name in ("simple_sequence", "simple_dyna_sequence"):
        client.load_model(name)
        assert client.is_model_ready(name)
        tensor = grpcclient.InferInput("INPUT", [1, 1], "INT32")
        tensor.set_data_from_numpy(np.array([[3]], np.int32))
        result = client.infer(name, [tensor], sequence_id=8, sequence_start=True, sequence_end=True)
        # simple_sequence: (3 + 1) * 1; simple_dyna_sequence: (3 + 1 + 1 * 8) * 1
        assert int(result.as_numpy("OUTPUT")[0, 0]) == (4 if name == "simple_sequence" else 12)
        client.unload_model(name)


def test_load_onnx_model_without_its_file_names_the_file(
    client: grpcclient.InferenceServerClient,
) -> None:
    # Override files replace the model directory: this one has a version but no model.onnx.
    config = json.dumps(
        {
            "name": "densenet_onnx",
            "platform": "onnxruntime_onnx",
            "input": [{"name": "data_0", "data_type": "TYPE_FP32", "dims": [3, 224, 224]}],
            "output": [{"name": "fc6_1", "data_type": "TYPE_FP32", "dims": [1000]}],
        }
    )
    with pytest.raises(InferenceServerException) as info:
        client.load_model("densenet_onnx", config=config, files={"file:1/notes.txt": b"none"})
    assert "failed to load 'densenet_onnx' version 1" in info.value.message()
    assert "model.onnx does not exist" in info.value.message()


def test_file_name_too_long_is_internal_and_server_stays_live(
    client: grpcclient.InferenceServerClient,
) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.load_model("simple", config="{}", files={"file:" + "a" * 256: b"x"})
    assert info.value.status() == "StatusCode.INTERNAL"
    assert "failed to poll from model repository" in info.value.message()
    assert client.is_server_live()


def test_load_with_override_files(client: grpcclient.InferenceServerClient) -> None:
    source = EXPLICIT_REPOSITORY / "simple"
    config = json.dumps({"max_batch_size": 4})
    files = {
        "file:config.pbtxt": (source / "config.pbtxt").read_bytes(),
        "file:1/model.py": (source / "1" / "model.py").read_bytes(),
    }
    client.load_model("simple", config=config, files=files)
    assert client.get_model_config("simple").config.max_batch_size == 4
    np.testing.assert_array_equal(_add(client), np.arange(16).reshape(1, 16) * 2)


def test_control_mode_none_refuses_load_and_unload_with_tritons_text(url: str) -> None:
    with grpcclient.InferenceServerClient(url) as client:
        for call in (client.load_model, client.unload_model):
            with pytest.raises(InferenceServerException) as info:
                call("simple")
            assert (info.value.status(), info.value.message()) == (
                "StatusCode.UNAVAILABLE",
                "explicit model load / unload is not allowed if polling is enabled",
            )
        assert client.is_model_ready("simple")


def _load_refusal(client: grpcclient.InferenceServerClient, name: str) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as info:
        client.load_model(name)
    return str(info.value.status()).removeprefix("StatusCode."), info.value.message()


def test_model_names_on_load_are_checked_with_tritons_texts(
    client: grpcclient.InferenceServerClient,
) -> None:
    traversal = ("INVALID_ARGUMENT", "model name must not contain path traversal characters")
    empty = ("INVALID_ARGUMENT", "Model name cannot be empty. Please enter a valid name to deploy.")
    for name in ("../etc", "a/../b", "model/", " .."):
        assert _load_refusal(client, name) == traversal, name
    for name in ("", "   "):
        assert _load_refusal(client, name) == empty, repr(name)
    for name in ("model123", "...", "..my_model"):
        assert _load_refusal(client, name) == (
            "INTERNAL",
            f"failed to load '{name}', failed to poll from model repository",
        )
    # Unload never answers with the traversal text: a name that is not loaded has nothing
    # to unload.
    for name in ("../etc", "a/../b", "model123"):
        client.unload_model(name)
    client.load_model("simple")
    assert client.is_model_ready("simple")


def test_poll_mode_loads_new_and_unloads_removed(scratch_repository: pathlib.Path) -> None:
    factory = lambda: build_server(  # noqa: E731
        scratch_repository, grpc_port=0, model_control_mode="poll", poll_seconds=0.1
    )
    with ThreadedServer(factory) as address, grpcclient.InferenceServerClient(address) as client:
        assert client.is_model_ready("simple")
        copy = scratch_repository / "simple_copy"
        copy.mkdir()
        (copy / "1").mkdir()
        (copy / "config.pbtxt").write_text(
            (scratch_repository / "simple" / "config.pbtxt")
            .read_text()
            .replace('"simple"', '"simple_copy"')
        )
        (copy / "1" / "model.py").write_bytes(
            (scratch_repository / "simple" / "1" / "model.py").read_bytes()
        )
        assert _eventually(lambda: client.is_model_ready("simple_copy"))
        for path in sorted(copy.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        copy.rmdir()
        assert _eventually(lambda: not client.is_model_ready("simple_copy"))


def _eventually(condition: Callable[[], bool], seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


SLOW_MODEL = """
import asyncio
import pathlib
import numpy as np
from asyncinfer.inference.python_model import Response, Tensor

class Model:
    finalized = False

    async def execute(self, requests):
        pathlib.Path(MARKER).touch()  # tells the test the call is inside execute
        await asyncio.sleep(0.5)
        value = -1 if Model.finalized else 1
        return [Response([Tensor("OUT", np.array([value], np.int32))]) for _ in requests]

    def finalize(self):
        Model.finalized = True
"""


def test_unload_waits_for_the_call_in_flight(tmp_path: pathlib.Path) -> None:
    model = tmp_path / "slow"
    (model / "1").mkdir(parents=True)
    marker = tmp_path / "inside-execute"
    (model / "1" / "model.py").write_text(f"MARKER = {str(marker)!r}\n{SLOW_MODEL}")
    (model / "config.pbtxt").write_text(
        'backend: "python"\n'
        'input [ { name: "IN" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
        'output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
    )
    factory = lambda: build_server(  # noqa: E731
        tmp_path, grpc_port=0, model_control_mode="explicit", load_models=["slow"]
    )
    with ThreadedServer(factory) as address, grpcclient.InferenceServerClient(address) as client:
        tensor = grpcclient.InferInput("IN", [1], "INT32")
        tensor.set_data_from_numpy(np.array([0], np.int32))
        results: list[tuple[Any, Any]] = []
        client.async_infer(
            "slow", [tensor], callback=lambda result, error: results.append((result, error))
        )
        assert _eventually(marker.exists)  # the call is inside execute now
        client.unload_model("slow")
        assert _eventually(lambda: bool(results))
        result, error = results[0]
        assert error is None
        assert int(result.as_numpy("OUT")[0]) == 1  # finalize() ran only after the call
        assert client.is_model_ready("slow") is False
