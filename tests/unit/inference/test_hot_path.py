"""The hot path's structural wins, asserted as behaviour: a 4 MiB input reaches the model as a
view of the bytes gRPC received and is copied once on the way out; a declaration is checked once
per model and its plan reused; bad requests still get the unplanned checks' texts."""

from __future__ import annotations

import pathlib
import tracemalloc
from collections.abc import AsyncIterator

import numpy as np
import pytest

from asyncinfer.errors import InvalidArgument
from asyncinfer.inference.infer_types import InferInput, InferRequest, RequestedOutput
from asyncinfer.inference.model import LoadedModel
from asyncinfer.inference.plans import PLANS_PER_MODEL
from asyncinfer.inference.repository.loader import load_model_dir, read_config
from asyncinfer.inference.rpc.infer import ModelInferRpc
from asyncinfer.inference.wire.decode import infer_request
from asyncinfer.inference.wire.encode import response_bytes
from asyncinfer.inference.wire.received import SPLIT_BYTES, ReceivedInfer, split_raw_inputs
from asyncinfer.pb.inference.grpc_service_pb2 import ModelInferRequest, ModelInferResponse

REPOSITORY = pathlib.Path(__file__).parents[3] / "examples" / "model_repository"
MiB = 1024 * 1024
ELEMENTS = MiB  # INT32: 4 MiB


async def _load(name: str) -> LoadedModel:
    model_dir = REPOSITORY / name
    config = read_config(name, model_dir, None)
    return (await load_model_dir(config, model_dir, REPOSITORY))[1]


@pytest.fixture
async def identity() -> AsyncIterator[LoadedModel]:
    model = await _load("custom_identity_int32")
    yield model
    await model.unload()


@pytest.fixture
async def simple() -> AsyncIterator[LoadedModel]:
    model = await _load("simple")
    yield model
    await model.unload()


def _identity_message(data: np.ndarray) -> bytes:
    message = ModelInferRequest(model_name="custom_identity_int32", id="big")
    message.inputs.add(name="INPUT0", datatype="INT32", shape=[1, data.size])
    message.raw_input_contents.append(data.tobytes())
    return message.SerializeToString()


def _decode(wire: bytes) -> ReceivedInfer:
    received = ModelInferRpc.request_codec.decode(wire)
    assert isinstance(received, ReceivedInfer)
    return received


def test_large_raw_entries_are_views_of_the_received_bytes() -> None:
    data = np.arange(ELEMENTS, dtype=np.int32)
    wire = _identity_message(data)
    received = _decode(wire)
    assert received.raw is not None and len(received.raw) == 1
    entry = received.raw[0]
    assert isinstance(entry, memoryview) and entry.obj is wire and entry.nbytes == 4 * ELEMENTS
    # The envelope is the message protobuf parses, less the raw entries.
    whole = ModelInferRequest.FromString(wire)
    whole.ClearField("raw_input_contents")
    assert received.message == whole


def test_small_messages_are_parsed_whole() -> None:
    wire = _identity_message(np.arange(16, dtype=np.int32))
    assert len(wire) < SPLIT_BYTES
    received = _decode(wire)
    assert received.raw is None and len(received.message.raw_input_contents) == 1


def test_split_keeps_protobuf_semantics_across_interleaved_fields() -> None:
    first = ModelInferRequest(model_name="a", raw_input_contents=[b"x" * SPLIT_BYTES])
    first.inputs.add(name="I", datatype="INT32", shape=[1])
    second = ModelInferRequest(model_name="b", raw_input_contents=[b"yz"])
    wire = first.SerializeToString() + second.SerializeToString()  # protobuf merges the two
    split = split_raw_inputs(wire)
    assert split is not None
    envelope, raw = split
    merged = ModelInferRequest.FromString(wire)
    assert [bytes(entry) for entry in raw] == list(merged.raw_input_contents)
    merged.ClearField("raw_input_contents")
    assert ModelInferRequest.FromString(envelope) == merged  # model_name "b": last one wins


def test_bytes_that_do_not_parse_get_protobufs_error() -> None:
    wire = _identity_message(np.arange(ELEMENTS // 16, dtype=np.int32))
    assert split_raw_inputs(wire[:-3]) is None
    with pytest.raises(InvalidArgument, match=r"do not parse as inference\.ModelInferRequest"):
        _decode(wire[:-3])


async def test_a_4_mib_input_reaches_the_model_uncopied_and_leaves_copied_once(
    identity: LoadedModel,
) -> None:
    data = np.random.default_rng(0).integers(-(2**31), 2**31 - 1, ELEMENTS, dtype=np.int32)
    wire = _identity_message(data)
    await identity.infer(infer_request(_decode(wire).message, raw=_decode(wire).raw))  # warm

    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        received = _decode(wire)
        response = await identity.infer(infer_request(received.message, raw=received.raw))
        # The output the model returned is its input, and that is the received bytes.
        output = response.outputs[0].data
        assert np.shares_memory(output, np.frombuffer(wire, np.uint8))
        reply = response_bytes(response)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # One tensor-sized allocation on the whole path: the reply itself.
    assert 4 * ELEMENTS <= peak - before < 2 * 4 * ELEMENTS
    parsed = ModelInferResponse.FromString(reply)
    assert np.array_equal(np.frombuffer(parsed.raw_output_contents[0], np.int32), data)


def _simple_request(
    batch: int = 1, outputs: tuple[RequestedOutput, ...] = (), width: int = 16
) -> InferRequest:
    a = np.arange(batch * width, dtype=np.int32).reshape(batch, width)
    inputs = [
        InferInput("INPUT0", "INT32", a.shape, a.tobytes()),
        InferInput("INPUT1", "INT32", a.shape, np.ones_like(a).tobytes()),
    ]
    return InferRequest(inputs, list(outputs))


async def test_a_declaration_is_planned_once_and_reused(simple: LoadedModel) -> None:
    assert len(simple.plans) == 0
    first = await simple.infer(_simple_request())
    assert len(simple.plans) == 1
    again = await simple.infer(_simple_request())
    assert len(simple.plans) == 1
    assert np.array_equal(first.arrays()["OUTPUT0"], again.arrays()["OUTPUT0"])
    await simple.infer(_simple_request(batch=2))  # another shape: another plan
    await simple.infer(_simple_request(outputs=(RequestedOutput("OUTPUT1"),)))
    assert len(simple.plans) == 3
    # Outputs with options are planned per request (their plans hold per-request choices).
    classified = await simple.infer(_simple_request(outputs=(RequestedOutput("OUTPUT0", 2),)))
    assert len(simple.plans) == 3 and classified.outputs[0].datatype == "BYTES"


async def test_plans_are_bounded(simple: LoadedModel) -> None:
    simple.plans.capacity = 4
    for batch in range(1, 9):
        await simple.infer(_simple_request(batch=batch))
    assert len(simple.plans) == 4
    assert PLANS_PER_MODEL >= 4


async def test_a_planned_declaration_still_checks_each_requests_bytes(simple: LoadedModel) -> None:
    await simple.infer(_simple_request())
    short = _simple_request()
    short.inputs[1].data = b"\x00" * 60
    with pytest.raises(InvalidArgument, match="unexpected total byte size 60 for input 'INPUT1'"):
        await simple.infer(short)
    with pytest.raises(InvalidArgument, match="unexpected shape for input 'INPUT0'"):
        await simple.infer(_simple_request(width=15))
    assert len(simple.plans) == 1  # a declaration that fails its checks is not remembered
    # In process, arrays rather than bytes: the same plan, the unplanned read.
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    response = await simple.infer(InferRequest.of_arrays({"INPUT0": a, "INPUT1": a}))
    assert np.array_equal(response.arrays()["OUTPUT0"], 2 * a)
