"""What process instances (``instance_kind: process``) now do as thread instances do: a running
execute sees its caller go away (``Request.cancelled()``, pb_utils' ``is_cancelled()``), the
client's cancellation or its deadline, and the next request on the instance is not cancelled;
custom metrics made in the instance process (in initialize and in execute; counter, gauge and
histogram) appear on the server's metrics endpoint with their values, summed across instances
and across workers."""

from __future__ import annotations

import asyncio
import pathlib
import queue
import shutil
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from asyncinfer.inference.app import build_server
from asyncinfer.testing import ServerProcess

from .inference_servers import ThreadedServer, infer_on_fresh_connections

CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 0
parameters {{ key: "instance_kind" value {{ string_value: "process" }} }}
input [ {{ name: "IN" data_type: TYPE_INT32 dims: [ -1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_INT32 dims: [ -1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: {count} }} ]
"""

# IN[0] > 0: create the file started-<IN[0]>, wait (30 s at most) until the caller has gone,
# then write "<seen> <seconds>" to the file seen-<IN[0]>. OUT = [1 if cancelled else 0].
OWN_CANCEL = """
import os, time
import numpy as np
from asyncinfer.inference.python_model import Response, Tensor

class Model:
    def initialize(self, args):
        self.folder = os.path.join(args["model_repository"], args["model_name"])

    def execute(self, requests):
        request = requests[0]
        tag = int(request.input("IN").as_numpy()[0])
        if tag > 0:
            open(os.path.join(self.folder, f"started-{tag}"), "w").close()
            start = time.monotonic()
            while not request.cancelled() and time.monotonic() < start + 30:
                time.sleep(0.01)
            seen = f"{request.cancelled()} {time.monotonic() - start:.3f}"
            with open(os.path.join(self.folder, f"seen-{tag}"), "w") as f:
                f.write(seen)
        out = np.array([int(request.cancelled())], np.int32)
        return [Response([Tensor("OUT", out)])]
"""

TRITON_CANCEL = """
import os, time
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        self.folder = args["model_repository"]  # Triton's: the model's own folder

    def execute(self, requests):
        request = requests[0]
        tag = int(pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()[0])
        if tag > 0:
            open(os.path.join(self.folder, f"started-{tag}"), "w").close()
            start = time.monotonic()
            while not request.is_cancelled() and time.monotonic() < start + 30:
                time.sleep(0.01)
            seen = f"{request.is_cancelled()} {time.monotonic() - start:.3f}"
            with open(os.path.join(self.folder, f"seen-{tag}"), "w") as f:
                f.write(seen)
        out = np.array([int(request.is_cancelled())], np.int32)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUT", out)])]
"""

# Families with names of their own (the test process's registry is the server's): a counter
# of loads (made and incremented in initialize), a counter of requests, a gauge of the last
# request's size and a histogram of sizes; and a family made in initialize, never changed.
METRICS = """
import numpy as np
from asyncinfer.inference.custom_metrics import MetricFamily
from asyncinfer.inference.python_model import Response, Tensor

class Model:
    def initialize(self, args):
        labels = {"model": args["model_name"]}
        MetricFamily("gaps_loads", "instances initialized").metric(labels).increment(1)
        unused = MetricFamily("gaps_unused", "never changed", MetricFamily.GAUGE)
        self.unused = unused.metric(labels)
        self.requests = MetricFamily("gaps_requests", "requests").metric(labels)
        self.last = MetricFamily("gaps_last", "last size", MetricFamily.GAUGE).metric(labels)
        self.sizes = MetricFamily("gaps_sizes", "sizes", MetricFamily.HISTOGRAM).metric(
            labels, buckets=[1.0, 4.0, 16.0]
        )

    def execute(self, requests):
        for request in requests:
            values = request.input("IN").as_numpy()
            self.requests.increment(1)
            self.last.set(values.size)
            self.sizes.observe(values.size)
        return [Response([Tensor("OUT", r.input("IN").as_numpy())]) for r in requests]
"""

MODELS = {
    "own_cancel": (OWN_CANCEL, 1),
    "triton_cancel": (TRITON_CANCEL, 1),
    "gaps_metrics": (METRICS, 2),
}


def _write(root: pathlib.Path, name: str, body: str, count: int) -> None:
    (root / name / "1").mkdir(parents=True)
    (root / name / "1" / "model.py").write_text(textwrap.dedent(body))
    (root / name / "config.pbtxt").write_text(CONFIG.format(name=name, count=count))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("process_gaps")
    for name, (body, count) in MODELS.items():
        _write(root, name, body, count)
    return root


@pytest.fixture(scope="module")
def served(root: pathlib.Path) -> Iterator[ThreadedServer]:
    server = ThreadedServer(lambda: build_server(root, grpc_port=0, metrics_port=0))
    with server:
        yield server


@pytest.fixture
def client(served: ThreadedServer) -> Iterator[grpcclient.InferenceServerClient]:
    assert served.server is not None
    with grpcclient.InferenceServerClient(f"127.0.0.1:{served.server.port}") as client:
        yield client


def _inputs(values: list[int]) -> list[grpcclient.InferInput]:
    tensor = grpcclient.InferInput("IN", [len(values)], "INT32")
    tensor.set_data_from_numpy(np.array(values, dtype=np.int32))
    return [tensor]


def _wait_for(path: pathlib.Path) -> str:
    for _ in range(400):  # bounded: 20 s
        if path.exists() and (path.name.startswith("started") or path.read_text()):
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"the model wrote no {path.name}")


def _seen(path: pathlib.Path) -> tuple[str, float]:
    """What the model wrote once it saw its caller go (it gives up after 30 s)."""
    seen, seconds = _wait_for(path).split()
    return seen, float(seconds)


def _not_cancelled_next(client: grpcclient.InferenceServerClient, model: str) -> None:
    # Same instance (count 1): its flag bytes were the cancelled request's a moment ago.
    result = client.infer(model, _inputs([0]), client_timeout=30)
    assert result.as_numpy("OUT").tolist() == [0]


@pytest.mark.parametrize("model", ["own_cancel", "triton_cancel"])
def test_a_running_execute_sees_the_client_cancel(
    client: grpcclient.InferenceServerClient, root: pathlib.Path, model: str
) -> None:
    answers: queue.Queue[Any] = queue.Queue()
    call = client.async_infer(model, _inputs([1]), lambda result, error: answers.put(error))
    _wait_for(root / model / "started-1")  # the execute runs in the instance process
    time.sleep(0.2)
    call.cancel()
    error = answers.get(timeout=10)
    assert isinstance(error, InferenceServerException) and "CANCELLED" in str(error.status())
    seen, seconds = _seen(root / model / "seen-1")
    assert seen == "True"
    # After the cancel (not a flag left from before), and not because it gave up at 30 s.
    assert 0.1 < seconds < 10
    _not_cancelled_next(client, model)


@pytest.mark.parametrize("model", ["own_cancel", "triton_cancel"])
def test_a_running_execute_sees_the_deadline_pass(
    client: grpcclient.InferenceServerClient, root: pathlib.Path, model: str
) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.infer(model, _inputs([2]), client_timeout=0.5)
    assert caught.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    seen, seconds = _seen(root / model / "seen-2")
    assert seen == "True"
    assert 0.05 < seconds < 10  # not at once: the previous request's flag was not left set
    _not_cancelled_next(client, model)
    assert client.is_model_ready(model)


def _scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gaps_")
    }


def test_custom_metrics_of_process_instances_are_exported(
    client: grpcclient.InferenceServerClient, served: ThreadedServer
) -> None:
    sizes = [1, 3, 20, 2, 5, 16]
    for size in sizes:  # two instances: each gets some of them
        client.infer("gaps_metrics", _inputs([7] * size))
    assert served.server is not None and served.server.metrics_url is not None
    lines = _scrape(served.server.metrics_url)
    labels = '{model="gaps_metrics"}'
    assert lines[f"gaps_loads_total{labels}"] == 2  # in initialize, one per instance
    assert lines[f"gaps_unused{labels}"] == 0
    assert lines[f"gaps_requests_total{labels}"] == len(sizes)
    assert lines[f"gaps_last{labels}"] == 16  # the last set() wins
    bucket = 'gaps_sizes_bucket{{le="{}",model="gaps_metrics"}}'
    assert [lines[bucket.format(le)] for le in ("1.0", "4.0", "16.0", "+Inf")] == [1, 3, 5, 6]
    assert lines[f"gaps_sizes_count{labels}"] == len(sizes)
    assert lines[f"gaps_sizes_sum{labels}"] == sum(sizes)


async def test_custom_metrics_of_process_instances_are_summed_across_workers(
    tmp_path: pathlib.Path, root: pathlib.Path
) -> None:
    shutil.copytree(root / "gaps_metrics", tmp_path / "gaps_metrics")
    argv = [
        sys.executable, "-m", "asyncinfer.cli", "serve", "--model-repository", str(tmp_path),
        "--grpc-port", "0", "--workers", "2", "--metrics-port", "0",
    ]  # fmt: skip
    calls = 12
    with ServerProcess(argv, workers=2, timeout=90) as proc:
        assert proc.metrics_url
        await infer_on_fresh_connections(proc.address, "gaps_metrics", np.ones(2, np.int32), calls)
        lines = await asyncio.to_thread(_scrape, proc.metrics_url)
        assert proc.stop() == 0
    labels = '{model="gaps_metrics"}'
    assert lines[f"gaps_requests_total{labels}"] == calls
    assert lines[f"gaps_loads_total{labels}"] == 4  # 2 workers x 2 instances
    assert lines[f"gaps_sizes_sum{labels}"] == 2 * calls
