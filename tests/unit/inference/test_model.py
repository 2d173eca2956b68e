"""The data plane (LoadedModel): one request through checks, scheduler and statistics, a stream
of a decoupled model's responses through the same scheduler and statistics, deadlines and
cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import textwrap
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from asyncinfer.errors import DeadlineExceeded, InvalidArgument, Unimplemented
from asyncinfer.inference.infer_types import InferRequest, RequestedOutput
from asyncinfer.inference.model import LoadedModel
from asyncinfer.inference.repository.loader import load_model_dir, read_config

CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 8
{extra}
input [ {{ name: "IN" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
"""
DECOUPLED = "model_transaction_policy { decoupled: true }"

MODELS = {
    # The whole batch in one response, then the final flag.
    "echo": (
        DECOUPLED,
        """
        from asyncinfer.inference.python_model import Response, Tensor

        class Model:
            async def execute(self, requests):
                for request in requests:
                    sender = request.response_sender()
                    sender.send(Response([Tensor("OUT", request.input("IN").as_numpy())]))
                    sender.send(final=True)
        """,
    ),
    "raises": (
        DECOUPLED,
        """
        class Model:
            async def execute(self, requests):
                raise RuntimeError("no")
        """,
    ),
    # Sends a good response, one of the wrong datatype, then a flags-only final.
    "mixed": (
        DECOUPLED,
        """
        import numpy as np
        from asyncinfer.inference.python_model import Response, Tensor

        class Model:
            async def execute(self, requests):
                sender = requests[0].response_sender()
                sender.send(Response([Tensor("OUT", requests[0].input("IN").as_numpy())]))
                sender.send(Response([Tensor("OUT", np.zeros((1, 1), np.float32))]))
                sender.send(final=True)
        """,
    ),
    "slow": (
        "",
        """
        import asyncio
        from asyncinfer.inference.python_model import Response, Tensor

        class Model:
            async def execute(self, requests):
                await asyncio.sleep(30)
                return [Response([Tensor("OUT", r.input("IN").as_numpy())]) for r in requests]
        """,
    ),
}


@contextlib.asynccontextmanager
async def _loaded(root: pathlib.Path, name: str) -> AsyncIterator[LoadedModel]:
    """Version 1 of model ``name`` of MODELS, loaded from ``root``, unloaded on leaving."""
    extra, source = MODELS[name]
    model_dir = root / name
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "config.pbtxt").write_text(CONFIG.format(name=name, extra=extra))
    (model_dir / "1" / "model.py").write_text(textwrap.dedent(source))
    config = read_config(name, model_dir, None)
    model = (await load_model_dir(config, model_dir, root))[1]
    try:
        yield model
    finally:
        await model.unload()


def _request(batch: int, **parameters: object) -> InferRequest:
    inputs = {"IN": np.arange(batch, dtype=np.int32).reshape(batch, 1)}
    return InferRequest.of_arrays(inputs, parameters=parameters, id="r")


async def test_a_decoupled_request_goes_through_the_scheduler_and_the_statistics(
    tmp_path: pathlib.Path,
) -> None:
    async with _loaded(tmp_path, "echo") as model:
        pending = []
        responses = []
        async for response in model.stream(_request(3)):
            pending.append(model.stats.pending)
            responses.append(response)
        assert pending == [1] and model.stats.pending == 0
        assert [r.final for r in responses] == [False]  # the flags-only final is not sent
        np.testing.assert_array_equal(responses[0].arrays()["OUT"], [[0], [1], [2]])
        assert model.stats.execution_count == 1 and list(model.stats.batches) == [3]
        assert model.stats.inference_count == 3 and model.stats.success.count == 1
        durations = [model.stats.compute_input, model.stats.compute_infer, model.stats.queue]
        assert [d.count for d in durations] == [1, 1, 1]


async def test_the_empty_final_is_sent_when_asked_with_its_parameter(
    tmp_path: pathlib.Path,
) -> None:
    async with _loaded(tmp_path, "echo") as model:
        request = _request(1, triton_enable_empty_final_response=True)
        responses = [r async for r in model.stream(request)]
        assert [(r.final, r.parameters, len(r.outputs)) for r in responses] == [
            (False, {"triton_final_response": False}, 1),
            (True, {"triton_final_response": True}, 0),
        ]


async def test_a_failed_decoupled_request_is_no_execution(tmp_path: pathlib.Path) -> None:
    async with _loaded(tmp_path, "raises") as model:
        responses = [r async for r in model.stream(_request(2))]
        assert len(responses) == 1 and responses[0].error is not None
        assert (
            "model 'raises' failed the request: internal error (id=" in responses[0].error.message
        )
        assert model.stats.fail.count == 1 and model.stats.success.count == 0
        assert model.stats.execution_count == 0 and not model.stats.batches
        assert model.stats.pending == 0


async def test_one_bad_response_fails_the_request_and_the_stream_goes_on(
    tmp_path: pathlib.Path,
) -> None:
    async with _loaded(tmp_path, "mixed") as model:
        responses = [r async for r in model.stream(_request(1))]
        assert [r.error is None for r in responses] == [True, False]
        assert "returned output 'OUT' as FP32" in str(responses[1].error)
        assert model.stats.fail.count == 1 and model.stats.success.count == 0


async def test_a_decoupled_model_needs_a_stream_and_bad_input_comes_as_a_response(
    tmp_path: pathlib.Path,
) -> None:
    async with _loaded(tmp_path, "echo") as model:
        with pytest.raises(Unimplemented, match="doesn't support models with decoupled"):
            await model.infer(_request(1))
        bad = InferRequest.of_arrays({"IN": np.zeros((1, 2), np.int32)})
        (response,) = [r async for r in model.stream(bad)]
        assert isinstance(response.error, InvalidArgument)
        assert model.stats.fail.count == 1


async def test_a_deadline_ends_the_request_and_marks_it_cancelled(
    tmp_path: pathlib.Path,
) -> None:
    async with _loaded(tmp_path, "slow") as model:
        request = _request(1)
        request.deadline = time.monotonic() + 0.05
        with pytest.raises(DeadlineExceeded, match="model 'slow' was not answered before"):
            await model.infer(request)
        assert request.cancellation.cancelled
        assert model.stats.fail.count == 1 and model.stats.pending == 0


@pytest.mark.parametrize("field", ["deadline", "expires"])
async def test_a_request_past_its_deadline_is_never_started(
    tmp_path: pathlib.Path, field: str
) -> None:
    async with _loaded(tmp_path, "slow") as model:
        request = _request(1)
        setattr(request, field, time.monotonic() - 0.001)  # it passed while the loop was busy
        with pytest.raises(DeadlineExceeded, match="reached the model after its deadline"):
            await model.infer(request)
        assert model.stats.execution_count == 0 and model.stats.pending == 0


async def test_a_caller_that_goes_away_marks_the_request_cancelled(
    tmp_path: pathlib.Path,
) -> None:
    async with _loaded(tmp_path, "slow") as model:
        request = _request(1)
        call = asyncio.ensure_future(model.infer(request))
        await asyncio.sleep(0.05)  # it runs the model's execute by now (which sleeps 30 s)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert request.cancellation.cancelled and model.stats.pending == 0


async def test_a_stream_of_a_model_that_is_not_decoupled_is_its_one_response(
    tmp_path: pathlib.Path,
) -> None:
    async with _loaded(tmp_path, "slow") as model:
        request = _request(1)
        request.outputs = [RequestedOutput("NOPE")]
        (response,) = [r async for r in model.stream(request)]
        assert response.final and "unexpected inference output 'NOPE'" in str(response.error)
