"""Triton's identity backend through tritonclient: every datatype answered as sent, the
``execute_delay_ms`` parameter with dynamic batching forming batches, bad configs refused."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from asyncinfer.inference.app import build_server

from .inference_servers import ThreadedServer

DATATYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


def _config(name: str, body: str) -> str:
    return f'name: "{name}"\nbackend: "identity"\n{body}\n'


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpcclient.InferenceServerClient]:
    root = tmp_path_factory.mktemp("identity")
    tensors = "".join(
        f'{{ name: "IN_{w}" data_type: TYPE_{"STRING" if w == "BYTES" else w} dims: [ -1 ] }},'
        for w in DATATYPES
    ).rstrip(",")
    models = {
        "every_type": "max_batch_size: 0\n"
        f"input [ {tensors} ]\noutput [ {tensors.replace('IN_', 'OUT_')} ]",
        "delayed": 'max_batch_size: 16\nparameters { key: "execute_delay_ms" value { '
        'string_value: "300" } }\ninput [ { name: "IN" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
        'output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
        "dynamic_batching { max_queue_delay_microseconds: 0 }\n"
        "instance_group [ { count: 1 } ]",
        "mismatched": "max_batch_size: 0\n"
        'input [ { name: "IN" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
        'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] } ]',
        "bad_delay": 'max_batch_size: 0\nparameters { key: "execute_delay_ms" value { '
        'string_value: "soon" } }\ninput [ { name: "IN" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
        'output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]',
    }
    for name, body in models.items():
        (root / name / "1").mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(_config(name, body))
    with (
        ThreadedServer(lambda: build_server(root, grpc_port=0)) as url,
        grpcclient.InferenceServerClient(url) as client,
    ):
        yield client


def _array(wire: str) -> np.ndarray[Any, Any]:
    if wire == "BYTES":
        return np.array([b"one", b"\x00two", b""], dtype=np.object_)
    return (np.arange(3) % 2 == 1) if wire == "BOOL" else np.arange(3).astype(DATATYPES[wire])


def test_every_datatype_comes_back_as_sent(client: grpcclient.InferenceServerClient) -> None:
    inputs = []
    for wire in DATATYPES:
        tensor = grpcclient.InferInput(f"IN_{wire}", [3], wire)
        tensor.set_data_from_numpy(_array(wire))
        inputs.append(tensor)
    result = client.infer("every_type", inputs)
    for wire in DATATYPES:
        np.testing.assert_array_equal(result.as_numpy(f"OUT_{wire}"), _array(wire))


def test_delay_lets_the_dynamic_batcher_form_batches(
    client: grpcclient.InferenceServerClient,
) -> None:
    count = 12
    done: queue.Queue[Any] = queue.Queue()
    for index in range(count):
        tensor = grpcclient.InferInput("IN", [1, 1], "INT32")
        tensor.set_data_from_numpy(np.array([[index]], dtype=np.int32))
        client.async_infer("delayed", [tensor], lambda result, error: done.put(error or result))
    answers = sorted(int(done.get(timeout=30).as_numpy("OUT")[0, 0]) for _ in range(count))
    assert answers == list(range(count))
    stats = client.get_inference_statistics("delayed").model_stats[0]
    # 12 requests through one instance that holds each execute 300 ms: the ones that arrive
    # meanwhile wait and go together, so there are fewer executions than requests.
    assert stats.inference_count == count
    assert stats.execution_count < stats.inference_count


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mismatched", "identity output 'OUT' must have the datatype of input 'IN'"),
        ("bad_delay", "parameter 'execute_delay_ms' must be a non-negative number"),
    ],
)
def test_bad_identity_config_fails_its_load_saying_why(
    client: grpcclient.InferenceServerClient, name: str, expected: str
) -> None:
    reasons = {m.name: m.reason for m in client.get_model_repository_index().models}
    assert expected in reasons[name]
    assert client.is_model_ready("every_type")
