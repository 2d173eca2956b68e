"""Triton python-backend models (TritonPythonModel, triton_python_backend_utils) served by
asyncinfer unchanged, driven by tritonclient: the example repository's Triton models, bad
models that must fail only themselves, BLS, the response sender, auto-complete, metrics."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import queue
import shutil
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from asyncinfer.inference.app import build_server
from asyncinfer.testing import ServerProcess

from .inference_servers import REPOSITORY, ThreadedServer, infer_on_fresh_connections

EXAMPLES = (
    "triton_add_sub",
    "triton_bls",
    "triton_bls_async",
    "triton_repeat",
    "triton_auto_complete",
    "triton_metrics",
    "identity_fp32",
)

ONE_IN_ONE_OUT = """
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "IN" data_type: TYPE_INT32 dims: [ -1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_INT32 dims: [ -1 ] }} ]
{extra}
"""

HEADER = (
    "import asyncio, json, os\nimport numpy as np\nimport triton_python_backend_utils as pb_utils\n"
)

#: name -> (model.py body, extra config text)
BAD_MODELS: dict[str, tuple[str, str]] = {
    "mixed_api": (
        """
from asyncinfer.inference.python_model import Response
class Model:
    async def execute(self, requests):
        return []
class TritonPythonModel:
    def execute(self, requests):
        return []
""",
        "",
    ),
    "neither_api": ("class Something:\n    pass\n", ""),
    "wrong_count": (
        """
class TritonPythonModel:
    def execute(self, requests):
        return []
""",
        "",
    ),
    "triton_error": (
        """
class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse(error=pb_utils.TritonError(
            "IN must be positive", pb_utils.TritonError.INVALID_ARG)) for r in requests]
""",
        "",
    ),
    "raises": (
        """
class TritonPythonModel:
    def execute(self, requests):
        raise pb_utils.TritonModelException("cannot handle this request")
""",
        "",
    ),
    "bls_unknown": (
        """
class TritonPythonModel:
    def execute(self, requests):
        given = pb_utils.get_input_tensor_by_name(requests[0], "IN")
        call = pb_utils.InferenceRequest(model_name="no_such_model", requested_output_names=[],
                                         inputs=[given])
        call.exec()
        return [pb_utils.InferenceResponse([]) for r in requests]
""",
        "",
    ),
    "sync_exec_on_loop": (
        """
class TritonPythonModel:
    async def execute(self, requests):
        call = pb_utils.InferenceRequest(model_name="triton_add_sub", requested_output_names=[],
                                         inputs=[])
        call.exec()
        return [pb_utils.InferenceResponse([]) for r in requests]
""",
        "",
    ),
    "send_after_final": (
        """
class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            value = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            try:
                sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", value)]))
            except pb_utils.TritonModelException as exc:
                with open(os.environ["SEND_AFTER_FINAL_FILE"], "w") as f:
                    f.write(exc.message())
        return None
""",
        "model_transaction_policy { decoupled: true }",
    ),
    # As python_backend's decoupled examples do: execute returns at once, a thread it started
    # sends the responses later (BLS from that thread reaches the server too).
    "threaded_sender": (
        """
import threading
class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            threading.Thread(target=self.answer, args=(request,)).start()
        return None
    def answer(self, request):
        sender = request.get_response_sender()
        value = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
        ready = pb_utils.is_model_ready("triton_add_sub")
        for step in range(3):
            out = pb_utils.Tensor("OUT", value * 10 + step + (100 if ready else 0))
            sender.send(pb_utils.InferenceResponse([out]))
        sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
""",
        "model_transaction_policy { decoupled: true }",
    ),
    "args_and_parameters": (
        """
class TritonPythonModel:
    def initialize(self, args):
        self.args = args
    def execute(self, requests):
        out = []
        for r in requests:
            seen = {"args": sorted(self.args), "parameters": json.loads(r.parameters()),
                    "config": json.loads(self.args["model_config"])["max_batch_size"],
                    "repository": self.args["model_repository"],
                    "kind": self.args["model_instance_kind"], "id": r.request_id(),
                    "requested": r.requested_output_names()}
            text = np.array([json.dumps(seen).encode()], dtype=np.object_)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", text)],
                                                  parameters={"answered_by": "args_model"}))
        return out
    def finalize(self):
        with open(os.path.join(self.args["model_repository"], "finalized"), "w") as f:
            f.write("finalized")
""",
        "",
    ),
}


def _write(root: pathlib.Path, name: str, body: str, extra: str, *, header: bool = True) -> None:
    folder = root / name / "1"
    folder.mkdir(parents=True)
    (folder / "model.py").write_text((HEADER if header else "") + textwrap.dedent(body))
    config = ONE_IN_ONE_OUT.format(name=name, extra=extra)
    if name == "args_and_parameters":
        config = config.replace(
            'name: "OUT" data_type: TYPE_INT32', 'name: "OUT" data_type: TYPE_STRING'
        )
    (root / name / "config.pbtxt").write_text(config)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("triton_models")
    for name in EXAMPLES:
        shutil.copytree(REPOSITORY / name, root / name)
    for name, (body, extra) in BAD_MODELS.items():
        _write(root, name, body, extra, header=name != "neither_api")
    return root


@pytest.fixture(scope="module")
def served(
    repository: pathlib.Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadedServer]:
    marker = tmp_path_factory.mktemp("marker") / "send_after_final.txt"
    monkey = pytest.MonkeyPatch()
    monkey.setenv("SEND_AFTER_FINAL_FILE", str(marker))
    server = ThreadedServer(lambda: build_server(repository, grpc_port=0, metrics_port=0))
    with server:
        yield server
    monkey.undo()


@pytest.fixture
def client(served: ThreadedServer) -> Iterator[grpcclient.InferenceServerClient]:
    assert served.server is not None
    with grpcclient.InferenceServerClient(f"127.0.0.1:{served.server.port}") as client:
        yield client


def _input(name: str, array: np.ndarray[Any, Any]) -> grpcclient.InferInput:
    datatype = {"f": "FP32", "i": "INT32", "O": "BYTES"}[array.dtype.kind]
    tensor = grpcclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def _add_sub_inputs() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], list[Any]]:
    a = np.arange(16, dtype=np.float32).reshape(1, 16)
    b = np.full((1, 16), 3, dtype=np.float32)
    return a, b, [_input("INPUT0", a), _input("INPUT1", b)]


def test_add_sub_written_for_triton_answers_sum_and_difference(
    client: grpcclient.InferenceServerClient,
) -> None:
    a, b, inputs = _add_sub_inputs()
    result = client.infer("triton_add_sub", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)


def test_bls_exec_calls_add_sub_in_process_and_counts_the_call(
    client: grpcclient.InferenceServerClient,
) -> None:
    before = _executions(client, "triton_add_sub")
    a, b, inputs = _add_sub_inputs()
    result = client.infer("triton_bls", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    assert _executions(client, "triton_add_sub") == before + 1


def test_bls_async_exec_runs_two_calls(client: grpcclient.InferenceServerClient) -> None:
    before = _executions(client, "triton_add_sub")
    a, b, inputs = _add_sub_inputs()
    result = client.infer("triton_bls_async", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), b - a)
    assert _executions(client, "triton_add_sub") == before + 2


def _executions(client: grpcclient.InferenceServerClient, model: str) -> int:
    stats = client.get_inference_statistics(model).model_stats
    return sum(s.inference_count for s in stats)


def _stream(
    client: grpcclient.InferenceServerClient, model: str, array: np.ndarray[Any, Any], count: int
) -> list[Any]:
    got: queue.Queue[Any] = queue.Queue()
    client.start_stream(callback=lambda result, error: got.put(error or result))
    try:
        client.async_stream_infer(model, [_input("IN", array)])
        return [got.get(timeout=30) for _ in range(count)]
    finally:
        client.stop_stream()


def test_decoupled_model_sends_one_response_per_element(
    client: grpcclient.InferenceServerClient,
) -> None:
    answers = _stream(client, "triton_repeat", np.array([4, 5, 6], dtype=np.int32), 3)
    assert [int(a.as_numpy("OUT")[0]) for a in answers] == [4, 5, 6]


def test_decoupled_model_sends_later_from_a_thread_of_its_own(
    client: grpcclient.InferenceServerClient,
) -> None:
    answers = _stream(client, "threaded_sender", np.array([4], dtype=np.int32), 3)
    assert [int(a.as_numpy("OUT")[0]) for a in answers] == [140, 141, 142]


def test_auto_completed_model_serves_and_its_config_shows_the_completion(
    client: grpcclient.InferenceServerClient,
) -> None:
    config = client.get_model_config("triton_auto_complete", as_json=True)["config"]
    assert config["max_batch_size"] == 8
    assert [(t["name"], t["data_type"], t["dims"]) for t in config["input"]] == [
        ("IN", "TYPE_FP32", ["4"])
    ]
    assert "dynamic_batching" in config
    result = client.infer("triton_auto_complete", [_input("IN", np.ones((2, 4), np.float32))])
    np.testing.assert_array_equal(result.as_numpy("OUT"), np.full((2, 4), 2, np.float32))


def test_custom_metrics_appear_on_the_metrics_endpoint(
    client: grpcclient.InferenceServerClient, served: ThreadedServer
) -> None:
    for size in (1, 3, 20):
        client.infer("triton_metrics", [_input("IN", np.ones(size, np.float32))])
    assert served.server is not None and served.server.metrics_url is not None
    with urllib.request.urlopen(served.server.metrics_url, timeout=10) as reply:
        text = reply.read().decode()
    lines = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in
             text.splitlines() if line.startswith("triton_metrics")}  # fmt: skip
    labels = '{model="triton_metrics"}'
    assert lines[f"triton_metrics_requests_total{labels}"] >= 3
    assert lines[f"triton_metrics_last_elements{labels}"] == 20
    assert lines['triton_metrics_elements_bucket{le="4.0",model="triton_metrics"}'] >= 2
    assert lines[f"triton_metrics_elements_sum{labels}"] >= 24


def test_identity_backend_answers_its_input(client: grpcclient.InferenceServerClient) -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    result = client.infer("identity_fp32", [_input("INPUT0", array)])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), array)


# ---------------------------------------------------------------------- bad models


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mixed_api", "defines both classes 'Model' and 'TritonPythonModel'"),
        ("neither_api", "defines neither; a model.py defines exactly one of class 'Model'"),
    ],
)
def test_model_py_with_both_or_neither_api_fails_its_load_saying_why(
    client: grpcclient.InferenceServerClient, name: str, expected: str
) -> None:
    assert not client.is_model_ready(name)
    index = {m.name: m.reason for m in client.get_model_repository_index().models}
    assert expected in index[name]
    assert client.is_model_ready("triton_add_sub")


def _infer_error(client: grpcclient.InferenceServerClient, model: str) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        client.infer(model, [_input("IN", np.array([1, 2], dtype=np.int32))])
    return caught.value


def test_wrong_number_of_responses_fails_the_request_with_tritons_text(
    client: grpcclient.InferenceServerClient,
) -> None:
    error = _infer_error(client, "wrong_count")
    assert error.status() == "StatusCode.INTERNAL"
    assert "InferenceRequest(s) size is:1, and InferenceResponse(s) size is:0" in error.message()


def test_triton_error_code_becomes_the_status(client: grpcclient.InferenceServerClient) -> None:
    error = _infer_error(client, "triton_error")
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "IN must be positive" in error.message()


def test_execute_that_raises_fails_with_tritons_text(
    client: grpcclient.InferenceServerClient,
) -> None:
    error = _infer_error(client, "raises")
    assert error.status() == "StatusCode.INTERNAL"
    assert (
        "Failed to process the request(s) for model 'raises_0', message: cannot handle this "
        "request" in error.message()
    )
    assert client.is_server_live()


def test_bls_to_an_unknown_model_raises_naming_it(
    client: grpcclient.InferenceServerClient,
) -> None:
    error = _infer_error(client, "bls_unknown")
    assert "BLS request to model 'no_such_model' failed: the model is unknown or not ready" in (
        error.message()
    )


def test_blocking_exec_in_an_async_execute_is_refused_clearly(
    client: grpcclient.InferenceServerClient,
) -> None:
    error = _infer_error(client, "sync_exec_on_loop")
    assert "use 'await request.async_exec()'" in error.message()


def test_sender_used_after_its_final_flag_raises(
    client: grpcclient.InferenceServerClient, served: ThreadedServer
) -> None:
    marker = pathlib.Path(os.environ["SEND_AFTER_FINAL_FILE"])
    got: queue.Queue[Any] = queue.Queue()
    client.start_stream(callback=lambda result, error: got.put(error or result))
    try:
        client.async_stream_infer(
            "send_after_final",
            [_input("IN", np.array([1], dtype=np.int32))],
            enable_empty_final_response=True,
        )
        got.get(timeout=30)
    finally:
        client.stop_stream()
    assert "Response sender has been closed" in marker.read_text()


def test_initialize_gets_tritons_args_and_requests_their_parameters(
    client: grpcclient.InferenceServerClient, repository: pathlib.Path
) -> None:
    result = client.infer(
        "args_and_parameters",
        [_input("IN", np.array([1], dtype=np.int32))],
        request_id="r-1",
        parameters={"greeting": "hello", "count": 3},
    )
    seen = json.loads(result.as_numpy("OUT")[0])
    assert seen["args"] == [
        "model_config",
        "model_instance_device_id",
        "model_instance_kind",
        "model_instance_name",
        "model_name",
        "model_repository",
        "model_version",
    ]
    assert seen["parameters"] == {"greeting": "hello", "count": 3}
    assert seen["config"] == 0 and seen["kind"] == "CPU" and seen["id"] == "r-1"
    assert seen["repository"] == str((repository / "args_and_parameters").resolve())
    assert seen["requested"] == ["OUT"]
    response = result.get_response()
    assert response.parameters["answered_by"].string_param == "args_model"


def test_finalize_runs_on_unload(repository: pathlib.Path, tmp_path: pathlib.Path) -> None:
    root = tmp_path / "models"
    shutil.copytree(repository / "args_and_parameters", root / "args_and_parameters")
    with ThreadedServer(lambda: build_server(root, grpc_port=0)) as url:
        with grpcclient.InferenceServerClient(url) as client:
            assert client.is_model_ready("args_and_parameters")
        assert not (root / "args_and_parameters" / "finalized").exists()
    assert (root / "args_and_parameters" / "finalized").read_text() == "finalized"


# ---------------------------------------------------------------------- process instances

PROCESS = '\nparameters { key: "instance_kind" value { string_value: "process" } }\n'


@pytest.fixture(scope="module")
def process_client(
    repository: pathlib.Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[grpcclient.InferenceServerClient]:
    """triton_add_sub, triton_bls, triton_error, args_and_parameters and bls_unknown as process
    instances."""
    root = tmp_path_factory.mktemp("triton_process_models")
    for name in (
        "triton_add_sub",
        "triton_bls",
        "triton_error",
        "args_and_parameters",
        "bls_unknown",
    ):
        shutil.copytree(repository / name, root / name)
        config = root / name / "config.pbtxt"
        config.write_text(config.read_text() + PROCESS)
    # asyncinfer's own API too: bls_add_sub (args["models"]) as a process instance, calling simple.
    shutil.copytree(REPOSITORY / "simple", root / "simple")
    shutil.copytree(REPOSITORY / "bls_add_sub", root / "bls_add_sub")
    config = root / "bls_add_sub" / "config.pbtxt"
    config.write_text(config.read_text() + PROCESS)
    with (
        ThreadedServer(lambda: build_server(root, grpc_port=0)) as url,
        grpcclient.InferenceServerClient(url) as client,
    ):
        yield client


def test_process_instances_run_the_same_triton_model(
    process_client: grpcclient.InferenceServerClient,
) -> None:
    a, b, inputs = _add_sub_inputs()
    result = process_client.infer("triton_add_sub", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    error = _infer_error(process_client, "triton_error")
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "IN must be positive" in error.message()
    answer = process_client.infer(
        "args_and_parameters", [_input("IN", np.array([1], dtype=np.int32))]
    )
    assert answer.get_response().parameters["answered_by"].string_param == "args_model"


def test_bls_from_a_process_instance_goes_through_the_server(
    process_client: grpcclient.InferenceServerClient,
) -> None:
    before = _executions(process_client, "triton_add_sub")
    a, b, inputs = _add_sub_inputs()
    result = process_client.infer("triton_bls", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    assert _executions(process_client, "triton_add_sub") == before + 1


def test_own_api_model_calls_other_models_from_a_process_instance(
    process_client: grpcclient.InferenceServerClient,
) -> None:
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.full((1, 16), 20, dtype=np.int32)
    inputs = [_input("INPUT0", a), _input("INPUT1", b)]
    result = process_client.infer("bls_add_sub", inputs)
    np.testing.assert_array_equal(result.as_numpy("SUM"), a + b)
    np.testing.assert_array_equal(result.as_numpy("ABS_DIFF"), np.abs(a - b))


def test_bls_from_a_process_instance_to_an_unknown_model_raises_naming_it(
    process_client: grpcclient.InferenceServerClient,
) -> None:
    error = _infer_error(process_client, "bls_unknown")
    assert "BLS request to model 'no_such_model' failed: the model is unknown or not ready" in (
        error.message()
    )


async def test_custom_metrics_of_two_workers_are_summed(tmp_path: pathlib.Path) -> None:
    shutil.copytree(REPOSITORY / "triton_metrics", tmp_path / "triton_metrics")
    argv = [
        sys.executable, "-m", "asyncinfer.cli", "serve", "--model-repository", str(tmp_path),
        "--grpc-port", "0", "--workers", "2", "--metrics-port", "0",
    ]  # fmt: skip
    calls = 16
    with ServerProcess(argv, workers=2, timeout=60) as proc:
        assert proc.metrics_url
        await infer_on_fresh_connections(
            proc.address, "triton_metrics", np.ones(2, np.float32), calls
        )
        url = proc.metrics_url

        def scrape() -> str:
            with urllib.request.urlopen(url, timeout=10) as reply:
                return str(reply.read().decode())

        text = await asyncio.to_thread(scrape)
        assert proc.stop() == 0
    lines = [line for line in text.splitlines() if line.startswith("triton_metrics_requests")]
    assert lines == [f'triton_metrics_requests_total{{model="triton_metrics"}} {float(calls)}']
