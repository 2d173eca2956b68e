"""Ragged batching through tritonclient, for an ONNX model and a python model: requests of
different shapes batched together (allow_ragged_batch), every batch_input kind computed over
the formed batch, and BATCH_SCATTER_WITH_INPUT_SHAPE cutting the ONNX graph's flat output back
per request; bad batch_input configs fail the load with Triton's texts."""

from __future__ import annotations

import pathlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from asyncinfer.inference.app import build_server

from ...onnx_models import ragged_model
from .inference_servers import ThreadedServer

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

KINDS = {
    "COUNT": "BATCH_ELEMENT_COUNT",
    "ACC": "BATCH_ACCUMULATED_ELEMENT_COUNT",
    "ACC0": "BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO",
    "MAXSHAPE": "BATCH_MAX_ELEMENT_COUNT_AS_SHAPE",
    "SHAPE": "BATCH_ITEM_SHAPE",
    "SHAPE_FLAT": "BATCH_ITEM_SHAPE_FLATTEN",
}
ROWS = ("COUNT_OUT", "ACC_OUT", "START_OUT", "MAX_OUT", "SHAPE_OUT", "FLAT_OUT")


def _batch_input(
    kind: str, target: str, datatype: str, source: str = 'source_input: "INPUT"'
) -> str:
    return f'{{ kind: {kind} target_name: "{target}" data_type: {datatype} {source} }}'


def _config(name: str, platform: str, row_dims: str) -> str:
    batch_inputs = ",\n  ".join(
        _batch_input(kind, target, "TYPE_FP32" if target == "MAXSHAPE" else "TYPE_INT32")
        for target, kind in KINDS.items()
    )
    rows = ", ".join(
        f'{{ name: "{row}" data_type: TYPE_INT32 dims: [ {row_dims} ] }}' for row in ROWS
    )
    return f"""
name: "{name}"
{platform}
max_batch_size: 8
input [ {{ name: "INPUT" data_type: TYPE_FP32 dims: [ -1 ] allow_ragged_batch: true }} ]
batch_input [
  {batch_inputs}
]
output [
  {{ name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] }},
  {{ name: "BATCH" data_type: TYPE_INT32 dims: [ 1 ] }},
  {rows}
]
batch_output [
  {{ kind: BATCH_SCATTER_WITH_INPUT_SHAPE target_name: "OUTPUT" source_input: "INPUT" }}
]
dynamic_batching {{ preferred_batch_size: [ 3 ] max_queue_delay_microseconds: 5000000 }}
"""


#: The python model answers each request from its own batch inputs, and says how many
#: requests its execute got (the ONNX graph's BATCH is the same count, by shape).
PYTHON_MODEL = """
import numpy as np
from asyncinfer.inference.python_model import Response, Tensor

ROWS = {"COUNT_OUT": "COUNT", "ACC_OUT": "ACC", "START_OUT": "ACC0", "SHAPE_OUT": "SHAPE",
        "FLAT_OUT": "SHAPE_FLAT"}

class Model:
    async def execute(self, requests):
        responses = []
        for request in requests:
            seen = {name: request.input(name).as_numpy() for name in ROWS.values()}
            outputs = [Tensor(row, seen[name].astype(np.int32).reshape(1, -1))
                       for row, name in ROWS.items()]
            extent = request.input("MAXSHAPE").as_numpy().shape[0]
            outputs.append(Tensor("MAX_OUT", np.array([[extent]], np.int32)))
            outputs.append(Tensor("OUTPUT", request.input("INPUT").as_numpy() * 2))
            outputs.append(Tensor("BATCH", np.array([[len(requests)]], np.int32)))
            responses.append(Response(outputs))
        return responses
"""


def _add_batch_output(onnx: bytes) -> bytes:
    """The ragged graph with BATCH (requests in the call, one row each) added."""
    import onnx as onnx_package
    from onnx import TensorProto, helper

    model = onnx_package.load_from_string(onnx)
    model.graph.node.append(helper.make_node("Shape", ["COUNT"], ["n64"]))
    model.graph.node.append(helper.make_node("Cast", ["n64"], ["n32"], to=TensorProto.INT32))
    model.graph.node.append(helper.make_node("Expand", ["n32", "rows"], ["BATCH"]))
    model.graph.output.append(helper.make_tensor_value_info("BATCH", TensorProto.INT32, ["b", 1]))
    return model.SerializeToString()


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: pathlib.Path = tmp_path_factory.mktemp("ragged-repo")
    (root / "ragged_onnx" / "1").mkdir(parents=True)
    (root / "ragged_onnx" / "1" / "model.onnx").write_bytes(_add_batch_output(ragged_model()))
    (root / "ragged_onnx" / "config.pbtxt").write_text(
        _config("ragged_onnx", 'platform: "onnxruntime_onnx"', "1")
    )
    (root / "ragged_python" / "1").mkdir(parents=True)
    (root / "ragged_python" / "1" / "model.py").write_text(PYTHON_MODEL)
    (root / "ragged_python" / "config.pbtxt").write_text(
        _config("ragged_python", 'backend: "python"', "-1")
    )
    with ThreadedServer(lambda: build_server(root, grpc_port=0)) as address:
        yield address


def _three_ragged_requests(url: str, model: str) -> list[grpcclient.InferResult]:
    """Requests of shapes [1, 3], [1, 4], [1, 5], sent in that order, answered as one batch."""
    results: list[Any] = [None] * 3

    def send(index: int) -> None:
        time.sleep(0.2 * index)  # keep the arrival order
        values = np.arange(3 + index, dtype=np.float32).reshape(1, -1) + 10 * index
        tensor = grpcclient.InferInput("INPUT", list(values.shape), "FP32")
        tensor.set_data_from_numpy(values)
        with grpcclient.InferenceServerClient(url) as client:
            results[index] = client.infer(model, [tensor])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def _rows(result: grpcclient.InferResult) -> dict[str, list[int]]:
    return {row: result.as_numpy(row).reshape(-1).tolist() for row in ROWS}


def test_onnx_ragged_batch_gets_every_batch_input_and_scatters_its_output(url: str) -> None:
    results = _three_ragged_requests(url, "ragged_onnx")
    for index, result in enumerate(results):
        values = np.arange(3 + index, dtype=np.float32).reshape(1, -1) + 10 * index
        np.testing.assert_array_equal(result.as_numpy("OUTPUT"), values * 2)  # scattered
        assert result.as_numpy("BATCH").reshape(-1).tolist() == [3]  # one engine call
    # One row per request, of the batch's tensors as the graph got them, concatenated.
    assert [_rows(result) for result in results] == [
        {"COUNT_OUT": [3], "ACC_OUT": [3], "START_OUT": [0], "MAX_OUT": [5], "SHAPE_OUT": [3],
         "FLAT_OUT": [3]},
        {"COUNT_OUT": [4], "ACC_OUT": [7], "START_OUT": [3], "MAX_OUT": [5], "SHAPE_OUT": [4],
         "FLAT_OUT": [4]},
        {"COUNT_OUT": [5], "ACC_OUT": [12], "START_OUT": [7], "MAX_OUT": [5], "SHAPE_OUT": [5],
         "FLAT_OUT": [5]},
    ]  # fmt: skip


def test_python_ragged_batch_gets_each_requests_own_batch_inputs(url: str) -> None:
    results = _three_ragged_requests(url, "ragged_python")
    for index, result in enumerate(results):
        values = np.arange(3 + index, dtype=np.float32).reshape(1, -1) + 10 * index
        np.testing.assert_array_equal(result.as_numpy("OUTPUT"), values * 2)
        assert result.as_numpy("BATCH").reshape(-1).tolist() == [3]  # one execute, 3 shapes
    # ACC0: [0, 3] for the first request, then the running totals; MAXSHAPE: the largest
    # element count for the first request, none for the others.
    assert [_rows(result) for result in results] == [
        {"COUNT_OUT": [3], "ACC_OUT": [3], "START_OUT": [0, 3], "MAX_OUT": [5], "SHAPE_OUT": [3],
         "FLAT_OUT": [3]},
        {"COUNT_OUT": [4], "ACC_OUT": [7], "START_OUT": [7], "MAX_OUT": [0], "SHAPE_OUT": [4],
         "FLAT_OUT": [4]},
        {"COUNT_OUT": [5], "ACC_OUT": [12], "START_OUT": [12], "MAX_OUT": [0], "SHAPE_OUT": [5],
         "FLAT_OUT": [5]},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("batch_input", "text"),
    [
        (
            _batch_input("BATCH_ELEMENT_COUNT", "C", "TYPE_INT64"),
            "batch input data type must be TYPE_INT32 or TYPE_FP32 for bad",
        ),
        (
            _batch_input("BATCH_ELEMENT_COUNT", "C", "TYPE_INT32", 'source_input: "NOPE"'),
            "unknown source input name 'NOPE' for bad",
        ),
        (
            _batch_input("BATCH_ACCUMULATED_ELEMENT_COUNT", "C", "TYPE_INT32", ""),
            "batch input kind 'BATCH_ACCUMULATED_ELEMENT_COUNT' expects 1 source input, got 0 "
            "for bad",
        ),
    ],
)
def test_bad_batch_inputs_fail_the_load_with_tritons_texts(
    tmp_path: pathlib.Path, batch_input: str, text: str
) -> None:
    (tmp_path / "bad" / "1").mkdir(parents=True)
    (tmp_path / "bad" / "1" / "model.py").write_text(PYTHON_MODEL)
    (tmp_path / "bad" / "config.pbtxt").write_text(
        'name: "bad"\nbackend: "python"\nmax_batch_size: 8\n'
        'input [ { name: "INPUT" data_type: TYPE_FP32 dims: [ -1 ] allow_ragged_batch: true } ]\n'
        'output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]\n'
        f"batch_input [ {batch_input} ]\n"
    )
    factory = lambda: build_server(tmp_path, grpc_port=0, model_control_mode="explicit")  # noqa: E731
    with ThreadedServer(factory) as address, grpcclient.InferenceServerClient(address) as client:
        with pytest.raises(InferenceServerException) as info:
            client.load_model("bad")
        assert text in info.value.message()
