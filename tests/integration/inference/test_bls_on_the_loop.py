"""A Triton python model's plain ``def execute`` that makes sync BLS calls (``exec()``) moves to
the event loop once it is measured quick, and runs there in a greenlet: ``exec()`` waits
without blocking the loop or hopping threads. Driven by tritonclient against a real server;
each model reports the thread its execute ran on."""

from __future__ import annotations

import pathlib
import shutil
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from asyncinfer.inference.app import build_server
from asyncinfer.inference.backends import _inline
from asyncinfer.inference.backends._inline import PROMOTE_AFTER

from .inference_servers import REPOSITORY, ThreadedServer

CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "IN" data_type: TYPE_FP32 dims: [ 16 ] }} ]
output [
  {{ name: "SUM" data_type: TYPE_FP32 dims: [ 16 ] }},
  {{ name: "THREAD" data_type: TYPE_INT64 dims: [ 1 ] }}
]
{extra}
"""

# Calls triton_add_sub with IN twice (sum = 2 * IN) and, when the request asks, the slow model
# first; an exec() error comes back as this request's error, as python_backend's examples do.
CALLER = """
import threading
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
            if "slow" in request.parameters():
                pb_utils.InferenceRequest(
                    model_name="slow", requested_output_names=["OUT"],
                    inputs=[pb_utils.Tensor("IN", data)],
                ).exec()
            callee = "nowhere" if "unknown" in request.parameters() else "triton_add_sub"
            answer = pb_utils.InferenceRequest(
                model_name=callee, requested_output_names=["OUTPUT0"],
                inputs=[pb_utils.Tensor(name, data[None]) for name in ("INPUT0", "INPUT1")],
            ).exec()
            thread = pb_utils.Tensor("THREAD", np.array([threading.get_ident()], np.int64))
            total = pb_utils.get_output_tensor_by_name(answer, "OUTPUT0")
            responses.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("SUM", total.as_numpy()[0]), thread,
            ]))
        return responses
"""

SLOW = """
import asyncio
from asyncinfer.inference.python_model import Response, Tensor


class Model:
    async def execute(self, requests):
        await asyncio.sleep(0.3)
        return [Response([Tensor("OUT", r.input("IN").as_numpy())]) for r in requests]
"""

SLOW_CONFIG = """
name: "slow"
backend: "python"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 16 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 16 ] } ]
"""


def _model(root: pathlib.Path, name: str, source: str, config: str) -> None:
    (root / name / "1").mkdir(parents=True)
    (root / name / "1" / "model.py").write_text(source)
    (root / name / "config.pbtxt").write_text(config)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """The server's address and the ident of its loop's thread."""
    root = tmp_path_factory.mktemp("bls_on_the_loop")
    shutil.copytree(REPOSITORY / "triton_add_sub", root / "triton_add_sub")
    _model(root, "caller", CALLER, CONFIG.format(name="caller", extra=""))
    threads = 'parameters { key: "sync_execute" value: { string_value: "thread" } }'
    _model(
        root, "caller_in_threads", CALLER, CONFIG.format(name="caller_in_threads", extra=threads)
    )
    _model(root, "slow", SLOW, SLOW_CONFIG)
    server = ThreadedServer(lambda: build_server(root, grpc_port=0))
    with pytest.MonkeyPatch.context() as patch:
        # Bounds this busy test machine cannot overrun by accident (the model is quick).
        patch.setattr(_inline, "INLINE_BUDGET_S", 0.5)
        patch.setattr(_inline, "INLINE_WALL_S", 5.0)
        with server as address:
            yield address, _loop_thread(server)


def _loop_thread(server: ThreadedServer) -> int:
    async def ident() -> int:
        return threading.get_ident()

    thread: int = server.run(ident())
    return thread


def _call(
    client: grpcclient.InferenceServerClient,
    model: str,
    data: np.ndarray,
    timeout: float | None = None,
    **parameters: object,
) -> tuple[np.ndarray, int]:
    tensor = grpcclient.InferInput("IN", [16], "FP32")
    tensor.set_data_from_numpy(data)
    result = client.infer(model, [tensor], parameters=parameters or None, client_timeout=timeout)
    return result.as_numpy("SUM"), int(result.as_numpy("THREAD")[0])


def test_a_sync_bls_execute_moves_to_the_loop_and_answers_the_same(
    served: tuple[str, int],
) -> None:
    address, loop_thread = served
    data = np.arange(16, dtype=np.float32)
    with grpcclient.InferenceServerClient(address) as client:
        threads = []
        for _ in range(PROMOTE_AFTER + 8):
            total, thread = _call(client, "caller", data)
            np.testing.assert_array_equal(total, 2 * data)
            threads.append(thread)
    assert loop_thread not in threads[:PROMOTE_AFTER], "it starts in a worker thread"
    assert threads[-4:] == [loop_thread] * 4, "then runs on the loop, exec() included"


def test_sync_execute_thread_keeps_a_bls_execute_in_threads(served: tuple[str, int]) -> None:
    address, loop_thread = served
    data = np.ones(16, dtype=np.float32)
    with grpcclient.InferenceServerClient(address) as client:
        for _ in range(PROMOTE_AFTER + 4):
            total, thread = _call(client, "caller_in_threads", data)
            np.testing.assert_array_equal(total, 2 * data)
            assert thread != loop_thread


def _promoted(client: grpcclient.InferenceServerClient, loop_thread: int) -> None:
    data = np.zeros(16, dtype=np.float32)
    for _ in range(PROMOTE_AFTER + 4):
        if _call(client, "caller", data)[1] == loop_thread:
            return
    pytest.fail("the caller never moved to the loop")


def test_a_bls_error_on_the_loop_fails_only_that_request(served: tuple[str, int]) -> None:
    address, loop_thread = served
    with grpcclient.InferenceServerClient(address) as client:
        _promoted(client, loop_thread)
        with pytest.raises(InferenceServerException) as raised:
            _call(client, "caller", np.zeros(16, np.float32), unknown=True)
        assert raised.value.status() == "StatusCode.INTERNAL"
        assert "BLS request to model 'nowhere' failed" in str(raised.value.message())
        total, thread = _call(client, "caller", np.ones(16, np.float32))
        np.testing.assert_array_equal(total, np.full(16, 2, np.float32))
        assert thread == loop_thread, "one failed request does not move it off the loop"


def test_a_caller_that_goes_away_while_exec_waits_leaves_the_server_serving(
    served: tuple[str, int],
) -> None:
    address, loop_thread = served
    with grpcclient.InferenceServerClient(address) as client:
        _promoted(client, loop_thread)
        data = np.full(16, 3, np.float32)
        with pytest.raises(InferenceServerException) as raised:
            _call(client, "caller", data, timeout=0.1, slow=True)
        assert raised.value.status() == "StatusCode.DEADLINE_EXCEEDED"
        # The loop served others meanwhile; the execute's exec() calls answered CANCELLED, it
        # ended and gave its instance back to the next call.
        started = time.monotonic()
        total, thread = _call(client, "caller", data)
        np.testing.assert_array_equal(total, 2 * data)
        assert thread == loop_thread
        assert client.is_server_live()
        assert time.monotonic() - started < 30
