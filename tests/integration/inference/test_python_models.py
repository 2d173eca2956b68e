"""Python models in a scratch repository: load failures, per-request failures, sync and async
hooks, warmup, version policies. Every other model keeps serving throughout."""

from __future__ import annotations

import pathlib
import textwrap
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from asyncinfer.inference.app import build_server

from .inference_servers import ThreadedServer

IDENTITY_CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "IN" data_type: TYPE_INT32 dims: [ -1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_INT32 dims: [ -1 ] }} ]
{extra}
"""

HEADER = """
import numpy as np
from asyncinfer.inference.python_model import ModelError, Response, Tensor
"""

MODELS = {
    "broken_import": "import no_such_module_anywhere\n",
    "raises": """
class Model:
    async def execute(self, requests):
        values = requests[0].input("IN").as_numpy()
        if values[0] < 0:
            raise RuntimeError("secret detail")
        return [Response([Tensor("OUT", values)])]
""",
    "model_error": """
class Model:
    async def execute(self, requests):
        return [Response(error=ModelError("IN must be positive"))]
""",
    "wrong_dtype": """
class Model:
    async def execute(self, requests):
        return [Response([Tensor("OUT", np.zeros(2, np.float32))])]
""",
    "classifier": """
class Model:
    async def execute(self, requests):
        return [Response([Tensor("OUT", r.input("IN").as_numpy())]) for r in requests]
""",
    "wrong_shape": """
class Model:
    async def execute(self, requests):
        return [Response([Tensor("OUT", np.zeros((2, 2), np.int32))])]
""",
    "sync_counter": """
import threading

class Model:
    def initialize(self, args):
        self.calls = 0
        self.name = args["model_name"]

    def execute(self, requests):
        assert threading.current_thread() is not threading.main_thread()
        self.calls += 1
        return [Response([Tensor("OUT", np.array([self.calls], np.int32))]) for _ in requests]
""",
}


def _write_model(
    root: pathlib.Path, name: str, source: str, *, versions: tuple[int, ...] = (1,), extra: str = ""
) -> None:
    (root / name).mkdir()
    (root / name / "config.pbtxt").write_text(IDENTITY_CONFIG.format(name=name, extra=extra))
    for version in versions:
        (root / name / str(version)).mkdir()
        body = HEADER + textwrap.dedent(source).replace("VERSION", str(version))
        (root / name / str(version) / "model.py").write_text(body)


VERSIONED = """
class Model:
    async def execute(self, requests):
        return [Response([Tensor("OUT", np.array([VERSION], np.int32))]) for _ in requests]
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpcclient.InferenceServerClient]:
    root = tmp_path_factory.mktemp("models")
    for name, source in MODELS.items():
        _write_model(root, name, source)
    config = root / "classifier" / "config.pbtxt"
    config.write_text(
        config.read_text().replace(
            'name: "OUT" data_type: TYPE_INT32 dims: [ -1 ]',
            'name: "OUT" data_type: TYPE_INT32 dims: [ -1 ] label_filename: "labels.txt"',
        )
    )
    (root / "classifier" / "labels.txt").write_text("zero\none\ntwo\n")
    warmup = (
        'model_warmup [ { name: "w" count: 3 inputs { key: "IN" value '
        "{ data_type: TYPE_INT32 dims: [ 2 ] zero_data: true } } } ]"
    )
    _write_model(root, "warmed", MODELS["sync_counter"], extra=warmup)
    _write_model(
        root,
        "latest_two",
        VERSIONED,
        versions=(1, 2, 3),
        extra="version_policy: { latest: { num_versions: 2 } }",
    )
    _write_model(
        root, "all_versions", VERSIONED, versions=(1, 2), extra="version_policy: { all: {} }"
    )
    _write_model(
        root,
        "specific",
        VERSIONED,
        versions=(1, 2, 3),
        extra="version_policy: { specific: { versions: [ 1, 3 ] } }",
    )
    with (
        ThreadedServer(lambda: build_server(root, grpc_port=0)) as url,
        grpcclient.InferenceServerClient(url) as client,
    ):
        yield client


def _infer(
    client: grpcclient.InferenceServerClient, model: str, values: object, version: str = ""
) -> Any:
    array = np.asarray(values, np.int32)
    tensor = grpcclient.InferInput("IN", list(array.shape), "INT32")
    tensor.set_data_from_numpy(array)
    return client.infer(model, [tensor], model_version=version).as_numpy("OUT")


def test_model_that_does_not_import_fails_only_its_own_load(
    client: grpcclient.InferenceServerClient,
) -> None:
    assert client.is_model_ready("broken_import") is False
    reasons = {m.name: m.reason for m in client.get_model_repository_index().models}
    assert "No module named 'no_such_module_anywhere'" in reasons["broken_import"]
    assert client.is_model_ready("raises")


def test_execute_that_raises_fails_that_request_only(
    client: grpcclient.InferenceServerClient,
) -> None:
    with pytest.raises(InferenceServerException) as info:
        _infer(client, "raises", [-1, 2])
    assert info.value.status() == "StatusCode.UNKNOWN"
    assert "internal error (id=" in info.value.message()
    assert "secret detail" not in info.value.message()
    np.testing.assert_array_equal(_infer(client, "raises", [1, 2]), [1, 2])
    stats = client.get_inference_statistics("raises").model_stats[0].inference_stats
    assert stats.fail.count == 1 and stats.success.count >= 1


def test_model_error_response_fails_with_its_message(
    client: grpcclient.InferenceServerClient,
) -> None:
    with pytest.raises(InferenceServerException) as info:
        _infer(client, "model_error", [1])
    assert info.value.status() == "StatusCode.INTERNAL"
    assert "model 'model_error' failed the request: IN must be positive" in info.value.message()


def test_output_of_the_wrong_datatype_is_reported(client: grpcclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as info:
        _infer(client, "wrong_dtype", [1])
    assert "returned output 'OUT' as FP32, but its config declares INT32" in info.value.message()


def test_output_of_the_wrong_shape_is_reported(client: grpcclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as info:
        _infer(client, "wrong_shape", [1])
    assert "returned output 'OUT' with shape [2, 2], but its config declares [-1]" in (
        info.value.message()
    )


def test_sync_execute_runs_in_a_worker_thread_with_state(
    client: grpcclient.InferenceServerClient,
) -> None:
    first = int(_infer(client, "sync_counter", [0])[0])
    assert int(_infer(client, "sync_counter", [0])[0]) == first + 1


def test_warmup_runs_before_ready(client: grpcclient.InferenceServerClient) -> None:
    # Three warmup executions happened before the first real request.
    assert int(_infer(client, "warmed", [0])[0]) == 4


def test_version_policies(client: grpcclient.InferenceServerClient) -> None:
    assert list(client.get_model_metadata("latest_two").versions) == ["2", "3"]
    assert int(_infer(client, "latest_two", [0])[0]) == 3
    assert int(_infer(client, "latest_two", [0], version="2")[0]) == 2
    assert client.is_model_ready("latest_two", "1") is False
    assert list(client.get_model_metadata("all_versions").versions) == ["1", "2"]
    assert list(client.get_model_metadata("specific").versions) == ["1", "3"]
    assert len(client.get_inference_statistics("all_versions").model_stats) == 2


def test_classification_with_labels(client: grpcclient.InferenceServerClient) -> None:
    tensor = grpcclient.InferInput("IN", [4], "INT32")
    tensor.set_data_from_numpy(np.array([3, 7, 1, 9], np.int32))
    outputs = [grpcclient.InferRequestedOutput("OUT", class_count=3)]
    result = client.infer("classifier", [tensor], outputs=outputs)
    assert list(result.as_numpy("OUT")) == [b"9.000000:3", b"7.000000:1:one", b"3.000000:0:zero"]
