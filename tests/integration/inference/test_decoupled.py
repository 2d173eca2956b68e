"""repeat_int32, the decoupled model of TRITON-COMPAT Part A, through tritonclient's streams:
several responses per request, the final flag, only requested outputs, and ModelInfer's
refusal."""

from __future__ import annotations

import queue
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException

from asyncinfer.inference.app import build_server

from .inference_servers import ThreadedServer


def _inputs(module, values: list[int], delays: list[int], wait: int):  # type: ignore[no-untyped-def]
    arrays = {
        "IN": np.array(values, np.int32),
        "DELAY": np.array(delays, np.uint32),
        "WAIT": np.array([wait], np.uint32),
    }
    tensors = []
    for name, array in arrays.items():
        datatype = "INT32" if array.dtype == np.int32 else "UINT32"
        tensor = module.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors


def test_sync_stream_gets_one_response_per_element_in_order(url: str) -> None:
    results: queue.Queue[tuple[Any, Any]] = queue.Queue()
    values = [4, -2, 0, 2**31 - 1]
    with grpcclient.InferenceServerClient(url) as client:
        client.start_stream(callback=lambda result, error: results.put((result, error)))
        client.async_stream_infer(
            "repeat_int32", _inputs(grpcclient, values, [1, 0, 2, 0], 1), request_id="r1"
        )
        client.async_stream_infer("repeat_int32", _inputs(grpcclient, [9], [0], 0), request_id="r2")
        client.stop_stream()
    got = []
    while not results.empty():
        result, error = results.get_nowait()
        assert error is None
        got.append(
            (
                result.get_response().id,
                int(result.as_numpy("OUT")[0]),
                int(result.as_numpy("IDX")[0]),
            )
        )
    assert got == [("r1", v, i) for i, v in enumerate(values)] + [("r2", 9, 0)]


def test_empty_final_response_when_asked(url: str) -> None:
    results: queue.Queue[tuple[Any, Any]] = queue.Queue()
    with grpcclient.InferenceServerClient(url) as client:
        client.start_stream(callback=lambda result, error: results.put((result, error)))
        client.async_stream_infer(
            "repeat_int32",
            _inputs(grpcclient, [1, 2], [0, 0], 0),
            request_id="final",
            enable_empty_final_response=True,
        )
        client.stop_stream()
    responses = []
    while not results.empty():
        result, error = results.get_nowait()
        assert error is None
        responses.append(result.get_response())
    finals = [r.parameters["triton_final_response"].bool_param for r in responses]
    assert finals == [False, False, True]
    assert len(responses[-1].outputs) == 0 and len(responses[0].outputs) == 2


async def _requests(items: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for item in items:
        yield item


async def test_aio_stream_sends_only_requested_outputs(url: str) -> None:
    item = {
        "model_name": "repeat_int32",
        "inputs": _inputs(aioclient, [7, 8, 9], [0, 0, 0], 0),
        "outputs": [aioclient.InferRequestedOutput("IDX")],
        "request_id": "only-idx",
    }
    async with aioclient.InferenceServerClient(url) as client:
        seen = []
        async for result, error in client.stream_infer(_requests([item])):
            assert error is None
            response = result.get_response()
            assert [o.name for o in response.outputs] == ["IDX"]
            seen.append(int(result.as_numpy("IDX")[0]))
    assert seen == [0, 1, 2]


async def test_aio_stream_bad_request_is_an_error_message_and_the_stream_goes_on(url: str) -> None:
    items = [
        {"model_name": "repeat_int32", "inputs": _inputs(aioclient, [1, 2], [0], 0)},
        {"model_name": "repeat_int32", "inputs": _inputs(aioclient, [5], [0], 0)},
    ]
    async with aioclient.InferenceServerClient(url) as client:
        outcomes: list[str | int] = []
        async for result, error in client.stream_infer(_requests(items)):
            outcomes.append(str(error) if error else int(result.as_numpy("OUT")[0]))
    assert len(outcomes) == 2
    assert isinstance(outcomes[0], str)
    assert "model 'repeat_int32'" in outcomes[0] and "DELAY must have one element" in outcomes[0]
    assert outcomes[1] == 5


def test_model_infer_on_a_decoupled_model_fails_clearly(url: str) -> None:
    with grpcclient.InferenceServerClient(url) as client:
        with pytest.raises(InferenceServerException) as info:
            client.infer("repeat_int32", _inputs(grpcclient, [1], [0], 0))
        assert "StatusCode.UNIMPLEMENTED" in str(info.value.status())
        assert "decoupled" in info.value.message() and "repeat_int32" in info.value.message()
        assert client.is_model_ready("repeat_int32")


DECOUPLED_CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 0
model_transaction_policy {{ decoupled: true }}
input [ {{ name: "IN" data_type: TYPE_INT32 dims: [ -1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_INT32 dims: [ -1 ] }} ]
"""

DECOUPLED_MODELS = {
    # A plain def execute (worker thread) hands the sender to a thread of its own and returns;
    # the responses and the final flag come later from that thread.
    "later_from_thread": """
import threading
import time
import numpy as np
from asyncinfer.inference.python_model import Response, Tensor


class Model:
    def execute(self, requests):
        for request in requests:
            sender = request.response_sender()
            values = request.input("IN").as_numpy()

            def send(sender=sender, values=values):
                for value in values:
                    time.sleep(0.01)
                    sender.send(Response([Tensor("OUT", np.array([value], np.int32))]))
                sender.send(final=True)

            threading.Thread(target=send).start()
        return None
""",
    "raises": """
class Model:
    async def execute(self, requests):
        raise RuntimeError("secret detail")
""",
}


@pytest.fixture(scope="module")
def decoupled_url(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("decoupled_models")
    for name, source in DECOUPLED_MODELS.items():
        (root / name / "1").mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(DECOUPLED_CONFIG.format(name=name))
        (root / name / "1" / "model.py").write_text(source)
    with ThreadedServer(lambda: build_server(root, grpc_port=0)) as address:
        yield address


async def test_responses_sent_later_from_a_model_thread(decoupled_url: str) -> None:
    tensor = aioclient.InferInput("IN", [3], "INT32")
    tensor.set_data_from_numpy(np.array([5, 6, 7], np.int32))
    items = [{"model_name": "later_from_thread", "inputs": [tensor], "request_id": "t"}]
    async with aioclient.InferenceServerClient(decoupled_url) as client:
        seen = []
        async for result, error in client.stream_infer(_requests(items)):
            assert error is None
            seen.append(int(result.as_numpy("OUT")[0]))
    assert seen == [5, 6, 7]


async def test_a_raising_decoupled_model_answers_an_error_without_details(
    decoupled_url: str,
) -> None:
    tensor = aioclient.InferInput("IN", [1], "INT32")
    tensor.set_data_from_numpy(np.array([1], np.int32))
    items = [{"model_name": "raises", "inputs": [tensor]}]
    async with aioclient.InferenceServerClient(decoupled_url) as client:
        errors = [str(error) async for _, error in client.stream_infer(_requests(items))]
    assert len(errors) == 1
    assert "model 'raises' failed the request" in errors[0] and "internal error" in errors[0]
    assert "secret detail" not in errors[0]


def _stats(client: grpcclient.InferenceServerClient) -> tuple[int, int, int, int]:
    (model,) = client.get_inference_statistics("repeat_int32").model_stats
    stats = model.inference_stats
    return stats.success.count, stats.fail.count, model.execution_count, model.inference_count


def test_model_statistics_count_decoupled_requests_like_any_other(url: str) -> None:
    results: queue.Queue[tuple[Any, Any]] = queue.Queue()
    with grpcclient.InferenceServerClient(url) as client:
        before = _stats(client)
        client.start_stream(callback=lambda result, error: results.put((result, error)))
        client.async_stream_infer("repeat_int32", _inputs(grpcclient, [1, 2, 3], [0, 0, 0], 0))
        bad = _inputs(grpcclient, [1], [0, 0], 0)  # DELAY shorter than IN: the model refuses
        client.async_stream_infer("repeat_int32", bad)
        client.stop_stream()
        after = _stats(client)
    deltas = tuple(a - b for a, b in zip(after, before, strict=True))
    # Three responses to one request: one success of batch 1. The bad one failed, but the model
    # ran for it (its error is a response): two executions, as Triton counts them.
    assert deltas == (1, 1, 2, 1)
