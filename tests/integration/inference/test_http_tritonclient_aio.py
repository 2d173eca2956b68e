"""tritonclient.http.aio against the HTTP front end: every endpoint kind, many calls at once,
system shared memory and a sequence, in the test's own event loop."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest
import tritonclient.http.aio as aioclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

A = np.arange(16, dtype=np.int32).reshape(1, 16)


def _inputs(a: np.ndarray, b: np.ndarray, binary: bool = True) -> list[aioclient.InferInput]:
    inputs = []
    for name, array in (("INPUT0", a), ("INPUT1", b)):
        tensor = aioclient.InferInput(name, list(array.shape), "INT32")
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


async def test_control_endpoints(http_url: str) -> None:
    async with aioclient.InferenceServerClient(http_url) as client:
        assert await client.is_server_live() and await client.is_server_ready()
        assert (await client.get_server_metadata())["name"] == "triton"
        assert await client.is_model_ready("simple")
        assert (await client.get_model_metadata("simple"))["name"] == "simple"
        assert (await client.get_model_config("simple"))["max_batch_size"] == 8
        stats = await client.get_inference_statistics("simple")
        assert [entry["name"] for entry in stats["model_stats"]] == ["simple"]
        index = await client.get_model_repository_index()
        assert "simple" in {entry["name"] for entry in index}
        assert (await client.get_trace_settings())["trace_level"] == ["OFF"]
        assert (await client.get_log_settings())["log_error"] is True
        assert await client.is_model_ready("no_such_model") is False
        with pytest.raises(InferenceServerException, match="Request for unknown model: 'nope'"):
            await client.get_model_metadata("nope")


async def test_concurrent_inference_json_and_binary(http_url: str) -> None:
    async with aioclient.InferenceServerClient(http_url) as client:

        async def one(i: int) -> None:
            a = np.full((1, 16), i, np.int32)
            result = await client.infer("simple", _inputs(a, a, binary=i % 2 == 0))
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a * 2)

        await asyncio.gather(*(one(i) for i in range(64)))


async def test_compression_and_sequence(http_url: str) -> None:
    async with aioclient.InferenceServerClient(http_url) as client:
        result = await client.infer(
            "simple",
            _inputs(A, A),
            request_compression_algorithm="gzip",
            response_compression_algorithm="deflate",
        )
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), A * 2)
        outputs = []
        for i, value in enumerate([5, 6, 7]):
            tensor = aioclient.InferInput("INPUT", [1, 1], "INT32")
            tensor.set_data_from_numpy(np.array([[value]], np.int32))
            reply = await client.infer(
                "simple_sequence",
                [tensor],
                sequence_id="text-id",
                sequence_start=i == 0,
                sequence_end=i == 2,
            )
            outputs.append(int(reply.as_numpy("OUTPUT").reshape(-1)[0]))
        assert outputs == [6, 6, 7]


async def test_system_shared_memory(http_url: str) -> None:
    key = f"/asyncinfer_http_aio_{os.getpid()}"
    handle = shm.create_shared_memory_region("aio", key, 256)
    try:
        shm.set_shared_memory_region(handle, [A, A])
        async with aioclient.InferenceServerClient(http_url) as client:
            await client.register_system_shared_memory("aio", key, 256)
            status = await client.get_system_shared_memory_status("aio")
            assert status == [{"name": "aio", "key": key, "offset": 0, "byte_size": 256}]
            inputs = _inputs(A, A)
            inputs[0].set_shared_memory("aio", 64)
            inputs[1].set_shared_memory("aio", 64, offset=64)
            output = aioclient.InferRequestedOutput("OUTPUT0")
            output.set_shared_memory("aio", 64, offset=128)
            await client.infer("simple", inputs, outputs=[output])
            total = shm.get_contents_as_numpy(handle, np.int32, [1, 16], offset=128)
            np.testing.assert_array_equal(total, A * 2)
            await client.unregister_system_shared_memory("aio")
            assert await client.get_system_shared_memory_status() == []
    finally:
        shm.destroy_shared_memory_region(handle)
