"""Example 03: preprocessing in front of a model service, over SysV shared memory and bytes."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
import sysv_ipc

from asyncinfer import Server
from asyncinfer.pb.preprocess_pb2 import ClassifyReply, ClassifyRequest, InferReply, InferRequest
from asyncinfer.pb.tensor_pb2 import Tensor
from asyncinfer.shm import SysvRing
from asyncinfer.shm.tensors import read_tensor, shm_ref, shm_tensor

EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "03_shm_preprocess"
sys.path.insert(0, str(EXAMPLE))

import shm_model  # noqa: E402
import shm_preprocess  # noqa: E402

CLASSIFY = shm_preprocess.Classify.rpc_path()
INFER = shm_model.Infer.rpc_path()


@pytest.fixture
async def model() -> AsyncIterator[Server]:
    server = shm_model.build()
    await server.start()
    yield server
    await server.stop(0)


async def _call(address: str, path: str, request: object, reply_type: type) -> object:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = channel.unary_unary(
            path, request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=reply_type.FromString,
        )  # fmt: skip
        return await stub(request, timeout=30)


def _images(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (64, 64, 3), np.uint8) for _ in range(count)]


def _expected(images: list[np.ndarray]) -> np.ndarray:
    batch = np.empty((len(images), 3, 64, 64), np.float32)
    shm_preprocess.normalize_into(images, batch)
    return shm_model._classify(batch)


@pytest.mark.parametrize("transport", ["shm", "bytes"])
async def test_both_transports_classify_the_same(model: Server, transport: str) -> None:
    resources = shm_preprocess.PreprocessResources(model.address, transport)  # type: ignore[arg-type]
    front = Server(max_receive_message_bytes=64 << 20)
    front.add_service(resources, shm_preprocess.Classify)
    await front.start()
    images = _images(5)
    request = ClassifyRequest(images=[shm_preprocess.encode_ppm(i) for i in images])
    try:
        for _ in range(3):  # slots are reused across calls
            reply = await _call(front.address, CLASSIFY, request, ClassifyReply)
            assert reply.transport == transport
            with read_tensor(reply.scores, None) as scores:
                np.testing.assert_allclose(scores, _expected(images), rtol=1e-5)
        stats = front.statistics().resources["asyncinfer.examples.preprocess.Preprocess"]
        model_stats = model.statistics().resources["asyncinfer.examples.preprocess.Model"]
        if transport == "shm":
            assert stats["live_slots"] == 0 and stats["allocated"] == 3
            assert model_stats["attaches"] >= 1 and model_stats["leases"] == 0
            keys = resources.ring.segment_keys
        else:
            assert stats == {} and model_stats["attaches"] == 0
            keys = []
    finally:
        await front.stop(0)
    for key in keys:  # the ring removed its segments on stop (the model may still be attached)
        with pytest.raises(sysv_ipc.ExistentialError):
            sysv_ipc.SharedMemory(key)


async def test_bad_images_are_invalid_and_the_service_keeps_serving(model: Server) -> None:
    front = shm_preprocess.build(model.address, "shm")
    await front.start()
    good = shm_preprocess.encode_ppm(_images(1)[0])
    cases = {
        b"GIF89a": "image 0: not a binary PPM",
        shm_preprocess.encode_ppm(np.zeros((8, 8, 3), np.uint8)): "image 0: 8x8; expected 64x64",
        good[:-1]: "image 0: 12287 pixel bytes; expected 12288",
    }
    try:
        for data, message in cases.items():
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await _call(front.address, CLASSIFY, ClassifyRequest(images=[data]), ClassifyReply)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in info.value.details()
        with pytest.raises(grpc.aio.AioRpcError, match=r"send 1\.\.32 images per call, not 33"):
            await _call(front.address, CLASSIFY, ClassifyRequest(images=[good] * 33), ClassifyReply)
        reply = await _call(front.address, CLASSIFY, ClassifyRequest(images=[good]), ClassifyReply)
        assert list(reply.scores.shape) == [1, shm_model.CLASSES]
    finally:
        await front.stop(0)


async def test_model_service_rejects_bad_descriptors(model: Server) -> None:
    data = np.arange(16, dtype=np.float32)
    with SysvRing(4096, 1) as ring, ring.allocate_nowait(128) as slot:
        descriptor = slot.write(data)
        request = InferRequest(model="identity", input=shm_tensor(descriptor, np.float32, (16,)))
        request.output.CopyFrom(shm_ref(slot.part(64, 64)))
        reply = await _call(model.address, INFER, request, InferReply)
        assert reply.output.WhichOneof("contents") == "shm"
        np.testing.assert_array_equal(slot.array(np.float32, (16,), offset=64), data)
        request.input.shm.offset = 4128  # aligned, past the end of the 64 + 4096-byte segment
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _call(model.address, INFER, request, InferReply)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (
            f"SysV segment id={descriptor.segment_id}: bytes [4128, 4192)" in info.value.details()
        )
        request.input.shm.offset = 0
        request.input.shm.key += 1
        with pytest.raises(grpc.aio.AioRpcError, match=r"no segment has key|not the segment's key"):
            await _call(model.address, INFER, request, InferReply)
        bad = InferRequest(model="nope", input=Tensor(datatype="FP32", shape=[1], raw=b"\0" * 4))
        with pytest.raises(grpc.aio.AioRpcError, match="unknown model 'nope'"):
            await _call(model.address, INFER, bad, InferReply)
        inline = InferRequest(
            model="identity", input=Tensor(datatype="FP32", shape=[16], raw=data.tobytes())
        )
        reply = await _call(model.address, INFER, inline, InferReply)
        assert reply.output.raw == data.tobytes()


def test_pipeline_script_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "pipeline.py"), "--calls", "2", "--batch", "2"],
        capture_output=True, text=True, timeout=90, check=True,
    )  # fmt: skip
    assert json.loads(result.stdout.splitlines()[-1]) == {"agree": 1.0}
