"""Statistics of decoupled requests: pending while the stream runs, one execution of the
request's own batch size when it succeeds, none when it fails."""

from __future__ import annotations

import pathlib
import textwrap

from asyncinfer.inference.decoupled import stream_responses
from asyncinfer.inference.model import LoadedModel
from asyncinfer.inference.repository.loader import load_model_dir, read_config
from asyncinfer.pb.inference.grpc_service_pb2 import ModelInferRequest

CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 8
model_transaction_policy {{ decoupled: true }}
input [ {{ name: "IN" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
"""

MODELS = {
    # The whole batch in one response, then the final flag.
    "echo": """
        from asyncinfer.inference.python_model import Response, Tensor

        class Model:
            async def execute(self, requests):
                for request in requests:
                    sender = request.response_sender()
                    sender.send(Response([Tensor("OUT", request.input("IN").as_numpy())]))
                    sender.send(final=True)
    """,
    "raises": """
        class Model:
            async def execute(self, requests):
                raise RuntimeError("no")
    """,
}


async def _model(root: pathlib.Path, name: str) -> LoadedModel:
    model_dir = root / name
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "config.pbtxt").write_text(CONFIG.format(name=name))
    (model_dir / "1" / "model.py").write_text(textwrap.dedent(MODELS[name]))
    config = read_config(name, model_dir, None)
    return (await load_model_dir(config, model_dir, root))[1]


def _request(name: str, batch: int) -> ModelInferRequest:
    request = ModelInferRequest(model_name=name, id="r")
    tensor = request.inputs.add(name="IN", datatype="INT32", shape=[batch, 1])
    tensor.contents.int_contents.extend(range(batch))
    return request


async def test_a_successful_request_is_pending_then_one_execution_of_its_batch(
    tmp_path: pathlib.Path,
) -> None:
    model = await _model(tmp_path, "echo")
    try:
        pending = []
        async for _ in stream_responses(model, _request("echo", 3), None):
            pending.append(model.stats.pending)
        assert pending == [1]
        assert model.stats.pending == 0
        assert model.stats.execution_count == 1 and list(model.stats.batches) == [3]
        assert model.stats.inference_count == 3 and model.stats.success.count == 1
    finally:
        await model.unload()


async def test_a_failed_request_is_no_execution(tmp_path: pathlib.Path) -> None:
    model = await _model(tmp_path, "raises")
    try:
        items = [item async for item in stream_responses(model, _request("raises", 2), None)]
        assert len(items) == 1  # the error message
        assert model.stats.fail.count == 1 and model.stats.success.count == 0
        assert model.stats.execution_count == 0 and not model.stats.batches
        assert model.stats.pending == 0
    finally:
        await model.unload()
