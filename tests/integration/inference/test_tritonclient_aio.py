"""tritonclient.grpc.aio against the example repository: unary calls and ModelStreamInfer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException


def _simple_inputs(a: np.ndarray, b: np.ndarray) -> list[aioclient.InferInput]:
    inputs = []
    for name, array in (("INPUT0", a), ("INPUT1", b)):
        tensor = aioclient.InferInput(name, list(array.shape), "INT32")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


async def test_concurrent_async_inference(url: str) -> None:
    async with aioclient.InferenceServerClient(url) as client:
        assert (await client.get_server_metadata()).name == "triton"

        async def one(i: int) -> None:
            a = np.full((1, 16), i, np.int32)
            result = await client.infer("simple", _simple_inputs(a, a))
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a * 2)

        await asyncio.gather(*(one(i) for i in range(32)))


async def test_async_unknown_model(url: str) -> None:
    async with aioclient.InferenceServerClient(url) as client:
        with pytest.raises(InferenceServerException, match="Request for unknown model"):
            await client.get_model_metadata("no_such_model")
        assert await client.is_model_ready("no_such_model") is False


async def _requests(
    items: list[tuple[str, str, list[aioclient.InferInput]]],
) -> AsyncIterator[dict[str, Any]]:
    for request_id, model, inputs in items:
        yield {"model_name": model, "inputs": inputs, "request_id": request_id}


async def test_stream_echoes_ids_in_order_and_ends_after_half_close(url: str) -> None:
    items = []
    for i in range(10):
        a = np.full((1, 16), i, np.int32)
        items.append((f"id-{i}", "simple", _simple_inputs(a, a)))
    async with aioclient.InferenceServerClient(url) as client:
        responses = client.stream_infer(_requests(items))
        seen = []
        async for result, error in responses:  # ends only when the server ends the stream
            assert error is None
            seen.append(result.get_response().id)
            i = int(seen[-1].split("-")[1])
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.full((1, 16), 2 * i))
        assert seen == [f"id-{i}" for i in range(10)]


async def test_stream_errors_come_back_as_error_message(url: str) -> None:
    a = np.ones((1, 16), np.int32)
    items = [
        ("ok-1", "simple", _simple_inputs(a, a)),
        ("bad", "no_such_model", _simple_inputs(a, a)),
        ("ok-2", "simple", _simple_inputs(a, a)),
    ]
    async with aioclient.InferenceServerClient(url) as client:
        outcomes = []
        async for result, error in client.stream_infer(_requests(items)):
            if error is not None:
                outcomes.append(("error", str(error)))
            else:
                outcomes.append(("ok", result.get_response().id))
    assert outcomes[0] == ("ok", "ok-1")
    assert outcomes[1][0] == "error" and "Request for unknown model" in outcomes[1][1]
    assert outcomes[2] == ("ok", "ok-2")
