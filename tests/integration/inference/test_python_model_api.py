"""asyncinfer's own model API, the parts Triton models also rely on: async executes that
overlap on one instance (``execute_overlap``), ``Request.cancelled()`` (and pb_utils'
``is_cancelled()``) seeing a caller that went away, and response parameters."""

from __future__ import annotations

import pathlib
import queue
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from asyncinfer.inference.app import build_server

from .inference_servers import ThreadedServer

CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "IN" data_type: TYPE_INT32 dims: [ -1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_INT32 dims: [ -1 ] }} ]
instance_group [ {{ count: 1 }} ]
{extra}
"""

OVERLAP = 'parameters {{ key: "execute_overlap" value {{ string_value: "{n}" }} }}'

MODELS: dict[str, tuple[str, str]] = {
    # Each execute waits (bounded) until 4 executes are inside at once and answers the most
    # it saw: 4 only if one instance runs 4 executes together.
    "overlapping": (
        """
import asyncio
import numpy as np
from asyncinfer.inference.python_model import Response, Tensor

class Model:
    def initialize(self, args):
        self.inside = 0
        self.most = 0

    async def execute(self, requests):
        self.inside += 1
        self.most = max(self.most, self.inside)
        try:
            for _ in range(500):
                if self.most >= 4:
                    break
                await asyncio.sleep(0.01)
        finally:
            self.inside -= 1
        return [Response([Tensor("OUT", np.array([self.most], np.int32))]) for _ in requests]
""",
        OVERLAP.format(n=4),
    ),
    "overlap_sync": (
        """
from asyncinfer.inference.python_model import Response
class Model:
    def execute(self, requests):
        return [Response() for _ in requests]
""",
        OVERLAP.format(n=2),
    ),
    "overlap_zero": (
        """
from asyncinfer.inference.python_model import Response
class Model:
    async def execute(self, requests):
        return [Response() for _ in requests]
""",
        OVERLAP.format(n=0),
    ),
    # A plain def execute that runs until its caller goes away (bounded), then records it.
    "watches_cancel": (
        """
import os, time
from asyncinfer.inference.python_model import Response
class Model:
    def initialize(self, args):
        self.marker = os.path.join(args["model_repository"], "watches_cancel", "seen")
    def execute(self, requests):
        deadline = time.monotonic() + 30
        while not requests[0].cancelled() and time.monotonic() < deadline:
            time.sleep(0.01)
        with open(self.marker, "w") as f:
            f.write(str(requests[0].cancelled()))
        return [Response() for _ in requests]
""",
        "",
    ),
    "triton_watches_cancel": (
        """
import os, time
import triton_python_backend_utils as pb_utils
class TritonPythonModel:
    def initialize(self, args):
        self.marker = os.path.join(args["model_repository"], "seen")
    def execute(self, requests):
        deadline = time.monotonic() + 30
        while not requests[0].is_cancelled() and time.monotonic() < deadline:
            time.sleep(0.01)
        with open(self.marker, "w") as f:
            f.write(str(requests[0].is_cancelled()))
        error = pb_utils.TritonError("cancelled", pb_utils.TritonError.CANCELLED)
        return [pb_utils.InferenceResponse(error=error) for _ in requests]
""",
        "",
    ),
    "with_parameters": (
        """
from asyncinfer.inference.python_model import Response, Tensor
class Model:
    async def execute(self, requests):
        return [Response([Tensor("OUT", r.input("IN").as_numpy())],
                         parameters={"source": "with_parameters", "items": 3, "exact": True})
                for r in requests]
""",
        "",
    ),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("model_api")
    for name, (body, extra) in MODELS.items():
        (root / name / "1").mkdir(parents=True)
        (root / name / "1" / "model.py").write_text(textwrap.dedent(body))
        (root / name / "config.pbtxt").write_text(CONFIG.format(name=name, extra=extra))
    return root


@pytest.fixture(scope="module")
def client(root: pathlib.Path) -> Iterator[grpcclient.InferenceServerClient]:
    with (
        ThreadedServer(lambda: build_server(root, grpc_port=0)) as url,
        grpcclient.InferenceServerClient(url) as client,
    ):
        yield client


def _input() -> list[grpcclient.InferInput]:
    tensor = grpcclient.InferInput("IN", [1], "INT32")
    tensor.set_data_from_numpy(np.array([7], dtype=np.int32))
    return [tensor]


def test_async_executes_overlap_on_one_instance(client: grpcclient.InferenceServerClient) -> None:
    done: queue.Queue[Any] = queue.Queue()
    for _ in range(4):
        client.async_infer("overlapping", _input(), lambda result, error: done.put(error or result))
    most = [int(done.get(timeout=30).as_numpy("OUT")[0]) for _ in range(4)]
    assert most == [4, 4, 4, 4]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("overlap_sync", "only an async def execute can overlap on one instance"),
        ("overlap_zero", "parameter 'execute_overlap' must be a whole number >= 1, not '0'"),
    ],
)
def test_bad_overlap_fails_the_load_saying_why(
    client: grpcclient.InferenceServerClient, name: str, expected: str
) -> None:
    reasons = {m.name: m.reason for m in client.get_model_repository_index().models}
    assert expected in reasons[name]


@pytest.mark.parametrize(
    ("name", "marker"),
    [
        ("watches_cancel", ("watches_cancel", "seen")),
        ("triton_watches_cancel", ("triton_watches_cancel", "seen")),
    ],
)
def test_a_running_execute_sees_its_caller_go_away(
    client: grpcclient.InferenceServerClient, root: pathlib.Path, name: str, marker: tuple[str, str]
) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.infer(name, _input(), client_timeout=0.5)
    assert caught.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    path = root.joinpath(*marker)
    for _ in range(200):  # bounded: the model polls every 10 ms
        if path.exists() and path.read_text():
            break
        time.sleep(0.05)
    assert path.read_text() == "True"
    assert client.is_model_ready(name)


def test_response_parameters_reach_the_client(client: grpcclient.InferenceServerClient) -> None:
    response = client.infer("with_parameters", _input()).get_response()
    assert response.parameters["source"].string_param == "with_parameters"
    assert response.parameters["items"].int64_param == 3
    assert response.parameters["exact"].bool_param is True
