"""tritonclient and asyncinfer's inference protos live side by side in one process."""

from __future__ import annotations

import tritonclient.grpc as grpcclient  # registers package `inference` in the default pool
from google.protobuf import descriptor_pool
from tritonclient.grpc import service_pb2 as triton_pb2

from asyncinfer.pb._pools import INFERENCE_POOL
from asyncinfer.pb.inference import grpc_service_pb2 as ours


def test_both_import_and_use_separate_pools() -> None:
    assert grpcclient.InferenceServerClient is not None
    assert ours.ModelInferRequest.DESCRIPTOR.file.pool is INFERENCE_POOL
    assert triton_pb2.ModelInferRequest.DESCRIPTOR.file.pool is descriptor_pool.Default()
    assert ours.ModelInferRequest is not triton_pb2.ModelInferRequest


def test_messages_are_wire_compatible() -> None:
    theirs = triton_pb2.ModelInferRequest(model_name="simple", id="x")
    tensor = theirs.inputs.add(name="INPUT0", datatype="INT32", shape=[1, 16])
    tensor.parameters["p"].int64_param = 7
    theirs.raw_input_contents.append(b"\x01" * 64)
    parsed = ours.ModelInferRequest.FromString(theirs.SerializeToString())
    assert parsed.inputs[0].parameters["p"].int64_param == 7
    assert parsed.SerializeToString() == theirs.SerializeToString()
