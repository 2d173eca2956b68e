"""Python models with process instances (``instance_kind: process``): tensors through shared
memory, per-request errors, a crashed instance restarted while the model keeps serving, an
arena too small for a request, a sequence model pinned to process instances, and no process
left behind after the server stops."""

from __future__ import annotations

import os
import pathlib
import shutil
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from asyncinfer.inference.app import build_server

from .inference_servers import REPOSITORY, ThreadedServer

CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 0
parameters {{ key: "instance_kind" value {{ string_value: "process" }} }}
{extra}
input [ {{ name: "IN" data_type: {dtype} dims: [ -1 ] }} ]
output [
  {{ name: "OUT" data_type: {dtype} dims: [ -1 ] }},
  {{ name: "PID" data_type: TYPE_INT64 dims: [ 1 ] }}
]
instance_group [ {{ kind: KIND_CPU count: 2 }} ]
"""

MODEL = """
import os
import numpy as np
from asyncinfer.inference.python_model import ModelError, Response, Tensor


class Model:
    def initialize(self, args):
        self.name = args["model_instance_name"]

    def execute(self, requests):
        responses = []
        for request in requests:
            values = request.input("IN").as_numpy()
            pid = Tensor("PID", np.array([os.getpid()], np.int64))
            if values.dtype == np.object_:
                out = np.array([v[::-1] for v in values], dtype=np.object_)
            elif values[0] == -1:
                os._exit(7)  # a crash in the middle of a request
            elif values[0] == -2:
                responses.append(Response(error=ModelError("IN[0] must not be -2")))
                continue
            elif values[0] == -3:
                raise RuntimeError("secret detail")
            else:
                out = values * 2
            responses.append(Response([Tensor("OUT", out), pid]))
        return responses
"""


def _write_model(
    root: pathlib.Path, name: str, *, dtype: str = "TYPE_INT32", extra: str = ""
) -> None:
    (root / name / "1").mkdir(parents=True)
    (root / name / "config.pbtxt").write_text(CONFIG.format(name=name, dtype=dtype, extra=extra))
    (root / name / "1" / "model.py").write_text(MODEL)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("process_models")
    _write_model(root, "doubler")
    _write_model(root, "reverser", dtype="TYPE_STRING")
    small = 'parameters { key: "instance_shm_bytes" value { string_value: "8192" } }'
    _write_model(root, "small_arena", extra=small)
    sequence = root / "string_sequence"
    shutil.copytree(REPOSITORY / "simple_string_dyna_sequence", sequence)
    config = (sequence / "config.pbtxt").read_text()
    config = config.replace("simple_string_dyna_sequence", "string_sequence")
    config += 'parameters { key: "instance_kind" value { string_value: "process" } }\n'
    (sequence / "config.pbtxt").write_text(config)
    return root


@pytest.fixture(scope="module")
def server(repository: pathlib.Path) -> Iterator[tuple[str, ThreadedServer]]:
    threaded = ThreadedServer(lambda: build_server(repository, grpc_port=0))
    with threaded as address:
        yield address, threaded


@pytest.fixture
def client(server: tuple[str, ThreadedServer]) -> Iterator[grpcclient.InferenceServerClient]:
    with grpcclient.InferenceServerClient(server[0]) as client:
        yield client


def _infer(client, model: str, values: np.ndarray, datatype: str = "INT32"):  # type: ignore[no-untyped-def]
    tensor = grpcclient.InferInput("IN", list(values.shape), datatype)
    tensor.set_data_from_numpy(values)
    return client.infer(model, [tensor])


def test_instances_are_other_processes_and_results_are_right(
    client: grpcclient.InferenceServerClient,
) -> None:
    pids = set()
    for i in range(6):
        values = np.arange(i, i + 1000, dtype=np.int32)
        result = _infer(client, "doubler", values)
        np.testing.assert_array_equal(result.as_numpy("OUT"), values * 2)
        pids.add(int(result.as_numpy("PID")[0]))
    assert os.getpid() not in pids
    # The arenas' names are unlinked as soon as they exist: nothing to leak if we are killed.
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"asyncinfer-{os.getpid()}-")]


def test_two_instances_serve_concurrent_requests(server: tuple[str, ThreadedServer]) -> None:
    pids: set[int] = set()
    barrier = threading.Barrier(4)

    def run() -> None:
        with grpcclient.InferenceServerClient(server[0]) as client:
            barrier.wait(10)
            for _ in range(10):
                pids.add(int(_infer(client, "doubler", np.ones(4, np.int32)).as_numpy("PID")[0]))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(pids) == 2


def test_bytes_tensors_cross_the_arena(client: grpcclient.InferenceServerClient) -> None:
    values = np.array([b"abc", b"", b"\x00\xff"], dtype=np.object_)
    result = _infer(client, "reverser", values, "BYTES")
    assert list(result.as_numpy("OUT")) == [b"cba", b"", b"\xff\x00"]


def test_model_error_fails_only_that_request(client: grpcclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="IN\\[0\\] must not be -2"):
        _infer(client, "doubler", np.array([-2], np.int32))
    assert _infer(client, "doubler", np.array([3], np.int32)).as_numpy("OUT")[0] == 6


def test_raising_execute_is_an_internal_error_as_with_thread_instances(
    client: grpcclient.InferenceServerClient,
) -> None:
    # As a thread instance's: UNKNOWN with an error id; the exception's text (which names the
    # model and instance) goes to the server log only.
    with pytest.raises(InferenceServerException) as info:
        _infer(client, "doubler", np.array([-3], np.int32))
    assert info.value.status() == "StatusCode.UNKNOWN"
    assert "internal error (id=" in info.value.message()
    assert "secret detail" not in info.value.message()
    assert _infer(client, "doubler", np.array([3], np.int32)).as_numpy("OUT")[0] == 6


def test_crashed_instance_fails_its_request_and_is_restarted(
    client: grpcclient.InferenceServerClient,
) -> None:
    before = {
        int(_infer(client, "doubler", np.ones(1, np.int32)).as_numpy("PID")[0]) for _ in range(4)
    }
    with pytest.raises(InferenceServerException) as info:
        _infer(client, "doubler", np.array([-1], np.int32))
    assert "StatusCode.UNAVAILABLE" in str(info.value.status())
    assert "model 'doubler' instance doubler_" in info.value.message()
    assert "exited (code 7)" in info.value.message()
    # The model keeps serving; the restarted instance comes back and both serve again.
    pids = set()
    for _ in range(40):
        result = _infer(client, "doubler", np.array([5], np.int32))
        assert result.as_numpy("OUT")[0] == 10
        pids.add(int(result.as_numpy("PID")[0]))
    assert len(pids) == 2 and len(pids - before) == 1  # one survivor, one new process
    assert client.is_model_ready("doubler")


def test_request_larger_than_the_arena_is_refused(client: grpcclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as info:
        _infer(client, "small_arena", np.zeros(4096, np.int32))
    assert "StatusCode.RESOURCE_EXHAUSTED" in str(info.value.status())
    assert "model 'small_arena'" in info.value.message()
    assert "instance_shm_bytes" in info.value.message()
    assert _infer(client, "small_arena", np.ones(8, np.int32)).as_numpy("OUT")[0] == 2


def test_sequences_are_pinned_to_process_instances(
    client: grpcclient.InferenceServerClient,
) -> None:
    def run(sequence_id: str, values: list[int]) -> list[int]:
        outputs = []
        for i, value in enumerate(values):
            tensor = grpcclient.InferInput("INPUT", [1, 1], "INT32")
            tensor.set_data_from_numpy(np.array([[value]], np.int32))
            result = client.infer(
                "string_sequence",
                [tensor],
                sequence_id=sequence_id,
                sequence_start=i == 0,
                sequence_end=i == len(values) - 1,
            )
            outputs.append(int(result.as_numpy("OUTPUT")[0, 0]))
        return outputs

    assert run("1000", [1, 2, 3]) == [1, 3, 1006]
    assert run("2000", [4, 4]) == [4, 2008]


def test_bad_instance_kind_fails_the_load(tmp_path: pathlib.Path) -> None:
    _write_model(tmp_path, "odd")
    config = tmp_path / "odd" / "config.pbtxt"
    config.write_text(config.read_text().replace('"process"', '"fiber"'))
    factory = lambda: build_server(  # noqa: E731
        tmp_path, grpc_port=0, model_control_mode="explicit"
    )
    message = "'instance_kind' must be 'thread' or 'process', not 'fiber'"
    with (
        ThreadedServer(factory) as address,
        grpcclient.InferenceServerClient(address) as client,
        pytest.raises(InferenceServerException, match=message),
    ):
        client.load_model("odd")


def test_decoupled_model_with_process_instances_fails_the_load(tmp_path: pathlib.Path) -> None:
    # The one check of this rule for python models (the loader's covers engine models).
    _write_model(tmp_path, "odd", extra="model_transaction_policy { decoupled: true }")
    factory = lambda: build_server(  # noqa: E731
        tmp_path, grpc_port=0, model_control_mode="explicit"
    )
    message = "decoupled models run as thread instances"
    with (
        ThreadedServer(factory) as address,
        grpcclient.InferenceServerClient(address) as client,
        pytest.raises(InferenceServerException, match=message),
    ):
        client.load_model("odd")


def test_unload_stops_the_instance_processes(tmp_path: pathlib.Path) -> None:
    _write_model(tmp_path, "doubler")
    factory = lambda: build_server(tmp_path, grpc_port=0)  # noqa: E731
    with ThreadedServer(factory) as address, grpcclient.InferenceServerClient(address) as client:
        pids = {int(_infer(client, "doubler", np.ones(2, np.int32)).as_numpy("PID")[0])}
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


FRAGILE = """
import os
import numpy as np
from asyncinfer.inference.python_model import Response, Tensor

MARKER = {marker!r}


class Model:
    def initialize(self, args):
        if os.path.exists(MARKER):
            raise RuntimeError("cannot start again")

    def execute(self, requests):
        if requests[0].input("IN").as_numpy()[0] < 0:
            os._exit(9)
        values = requests[0].input("IN").as_numpy()
        return [Response([Tensor("OUT", values), Tensor("PID", np.array([os.getpid()]))])]
"""


def test_an_instance_that_cannot_restart_is_skipped(tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "no-more-starts"
    _write_model(tmp_path / "models", "fragile")
    (tmp_path / "models" / "fragile" / "1" / "model.py").write_text(
        FRAGILE.format(marker=str(marker))
    )
    factory = lambda: build_server(tmp_path / "models", grpc_port=0)  # noqa: E731
    with ThreadedServer(factory) as address, grpcclient.InferenceServerClient(address) as client:
        marker.touch()
        with pytest.raises(InferenceServerException, match="exited \\(code 9\\)"):
            _infer(client, "fragile", np.array([-1], np.int32))
        # The crashed instance cannot come back; the other one serves every later request.
        for value in range(10):
            result = _infer(client, "fragile", np.array([value], np.int32))
            assert result.as_numpy("OUT")[0] == value
