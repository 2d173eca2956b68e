"""BYTES tensors through ONNX Runtime string tensors, driven by tritonclient: the graph reads the
bytes sent (never their Python repr), and every byte value, NULs and non-UTF-8 included, comes
back byte-exact, from raw inputs and from typed bytes_contents with millions of elements."""

from __future__ import annotations

import pathlib
import struct
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc

from asyncinfer.inference.app import build_server

from ...onnx_models import string_model
from .inference_servers import ThreadedServer

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

CONFIG = """
name: "onnx_strings"
platform: "onnxruntime_onnx"
max_batch_size: 0
input [ { name: "TEXT" data_type: TYPE_STRING dims: [ -1 ] } ]
output [
  { name: "SAME" data_type: TYPE_STRING dims: [ -1 ] },
  { name: "CODE" data_type: TYPE_INT64 dims: [ -1 ] }
]
"""


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: pathlib.Path = tmp_path_factory.mktemp("strings-repo")
    (root / "onnx_strings" / "1").mkdir(parents=True)
    (root / "onnx_strings" / "1" / "model.onnx").write_bytes(string_model())
    (root / "onnx_strings" / "config.pbtxt").write_text(CONFIG)
    with ThreadedServer(lambda: build_server(root, grpc_port=0)) as address:
        yield address


def _infer(url: str, items: list[bytes]) -> grpcclient.InferResult:
    array = np.empty(len(items), dtype=np.object_)
    array[:] = items
    tensor = grpcclient.InferInput("TEXT", [len(items)], "BYTES")
    tensor.set_data_from_numpy(array)
    with grpcclient.InferenceServerClient(url) as client:
        return client.infer("onnx_strings", [tensor])


def _elements(raw: bytes) -> list[bytes]:
    items, offset = [], 0
    while offset < len(raw):
        (length,) = struct.unpack_from("<I", raw, offset)
        items.append(raw[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return items


def test_the_graph_reads_the_bytes_sent_not_their_repr(url: str) -> None:
    items = [b"123", "é".encode(), b"b'123'", b"12\x003"]
    result = _infer(url, items)
    assert result.as_numpy("CODE").tolist() == [1, 2, -1, -1]
    assert _elements(result.get_response().raw_output_contents[0]) == items


def test_every_byte_value_and_nuls_come_back_byte_exact(url: str) -> None:
    items = [bytes([value]) for value in range(256)]
    items += [bytes(range(256)), b"a\x00b\x00", b"\x00", b"", "é".encode(), b"\xc3"]
    result = _infer(url, items)
    assert _elements(result.get_response().raw_output_contents[0]) == items
    assert result.as_numpy("CODE").tolist()[:3] == [-1, -1, -1]


def test_millions_of_bytes_contents_elements_come_back_byte_exact(url: str) -> None:
    count = 2_000_000
    items = [str(index % 1000).encode() for index in range(count)]
    items[7] = b"\x00\xff"  # one non-UTF-8 element among them
    request = service_pb2.ModelInferRequest(model_name="onnx_strings")
    tensor = request.inputs.add(name="TEXT", datatype="BYTES", shape=[count])
    tensor.contents.bytes_contents.extend(items)
    options = [("grpc.max_receive_message_length", 64 << 20)]
    with grpc.insecure_channel(url, options=options) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        reply = stub.ModelInfer(request, timeout=120)
    assert _elements(reply.raw_output_contents[0]) == items
    codes = np.frombuffer(reply.raw_output_contents[1], np.int64)
    assert codes.shape == (count,) and int(codes[123]) == 1
