"""Dynamic batching through tritonclient: a python model that records the batches it is given,
served from a scratch repository; batches form under load, each client gets its own rows, a
full queue is UNAVAILABLE, bad priority and timeout parameters are INVALID_ARGUMENT, and the
statistics count inferences, executions and batch sizes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from asyncinfer.inference.app import build_server

from .inference_servers import ThreadedServer

MODEL = """
import asyncio
import numpy as np
from asyncinfer.inference.python_model import Response, Tensor

class Model:
    async def execute(self, requests):
        await asyncio.sleep(0.5)  # long enough for the other clients' requests to queue
        size = sum(r.input("X").as_numpy().shape[0] for r in requests)
        return [
            Response([
                Tensor("Y", r.input("X").as_numpy() * 2),
                Tensor("BATCH", np.full((r.input("X").as_numpy().shape[0], 1), size, np.int32)),
            ])
            for r in requests
        ]
"""

CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 8
input [ {{ name: "X" data_type: TYPE_INT32 dims: [ 2 ] }} ]
output [
  {{ name: "Y" data_type: TYPE_INT32 dims: [ 2 ] }},
  {{ name: "BATCH" data_type: TYPE_INT32 dims: [ 1 ] }}
]
dynamic_batching {{
  priority_levels: 2
  default_priority_level: 2
  default_queue_policy {{ max_queue_size: {queue} }}
}}
"""


#: A model that answers at once with the batch it was given, behind a long queue delay.
FAST_MODEL = MODEL.replace("await asyncio.sleep(0.5)", "pass")
DELAY_S = 4.0
PREFERRED_CONFIG = f"""
name: "preferred"
backend: "python"
max_batch_size: 8
input [ {{ name: "X" data_type: TYPE_INT32 dims: [ 2 ] }} ]
output [
  {{ name: "Y" data_type: TYPE_INT32 dims: [ 2 ] }},
  {{ name: "BATCH" data_type: TYPE_INT32 dims: [ 1 ] }}
]
dynamic_batching {{
  preferred_batch_size: [ 2, 6 ]
  max_queue_delay_microseconds: {int(DELAY_S * 1e6)}
}}
"""


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("batching-repo")
    for name, queue in (("batched", 16), ("tiny_queue", 1), ("callers_gone", 16)):
        (root / name / "1").mkdir(parents=True)
        (root / name / "1" / "model.py").write_text(MODEL)
        (root / name / "config.pbtxt").write_text(CONFIG.format(name=name, queue=queue))
    (root / "preferred" / "1").mkdir(parents=True)
    (root / "preferred" / "1" / "model.py").write_text(FAST_MODEL)
    (root / "preferred" / "config.pbtxt").write_text(PREFERRED_CONFIG)
    with ThreadedServer(lambda: build_server(root, grpc_port=0)) as address:
        yield address


def infer(url: str, model: str, value: int, rows: int = 1, **kwargs: Any) -> Any:
    with grpcclient.InferenceServerClient(url) as client:
        x = np.full((rows, 2), value, np.int32)
        tensor = grpcclient.InferInput("X", list(x.shape), "INT32")
        tensor.set_data_from_numpy(x)
        return client.infer(model, [tensor], **kwargs)


def in_threads(calls: list[Any]) -> list[Any]:
    """Run the calls at once; each result is the return value or the exception raised."""
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            results[index] = calls[index]()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_requests_queued_behind_a_busy_instance_run_as_one_batch(url: str) -> None:
    first = threading.Thread(target=infer, args=(url, "batched", 100))
    first.start()
    threading.Event().wait(0.1)  # the first request is executing now
    results = in_threads([lambda v=v: infer(url, "batched", v, rows=2) for v in range(3)])
    first.join(30)
    for value, result in enumerate(results):
        assert not isinstance(result, Exception), result
        np.testing.assert_array_equal(result.as_numpy("Y"), np.full((2, 2), 2 * value))
    sizes = {int(result.as_numpy("BATCH")[0, 0]) for result in results}
    assert sizes == {6}  # three requests of two rows each, in one execute
    with grpcclient.InferenceServerClient(url) as client:
        (stats,) = client.get_inference_statistics("batched").model_stats
    assert stats.inference_count == 1 + 6
    assert stats.execution_count == 2
    assert {(b.batch_size, b.compute_infer.count) for b in stats.batch_stats} == {(1, 1), (6, 1)}


def test_a_full_queue_is_unavailable_naming_model_and_size(url: str) -> None:
    first = threading.Thread(target=infer, args=(url, "tiny_queue", 1))
    first.start()
    threading.Event().wait(0.1)
    results = in_threads([lambda v=v: infer(url, "tiny_queue", v) for v in range(3)])
    first.join(30)
    rejected = [r for r in results if isinstance(r, InferenceServerException)]
    answered = [r for r in results if not isinstance(r, Exception)]
    assert len(answered) >= 1 and len(rejected) >= 1
    for error in rejected:
        assert error.status() == "StatusCode.UNAVAILABLE"
        assert "tiny_queue" in error.message() and "max_queue_size 1" in error.message()
    assert infer(url, "tiny_queue", 7).as_numpy("Y").tolist() == [[14, 14]]


def test_a_request_whose_caller_gave_up_is_not_run(url: str) -> None:
    first = threading.Thread(target=infer, args=(url, "callers_gone", 1))
    first.start()
    threading.Event().wait(0.1)  # the first request is executing for the next 0.4 s
    with pytest.raises(InferenceServerException) as info:
        infer(url, "callers_gone", 2, client_timeout=0.1)  # gives up while queued
    assert info.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    first.join(30)
    assert infer(url, "callers_gone", 3).as_numpy("BATCH").tolist() == [[1]]  # ran alone
    with grpcclient.InferenceServerClient(url) as client:
        (stats,) = client.get_inference_statistics("callers_gone").model_stats
    assert (stats.inference_count, stats.execution_count) == (2, 2)  # the first and the last


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [({"priority": 3}, "priority level 3 is out of range"), ({"timeout": 50}, "timeout override")],
)
def test_bad_scheduling_parameters_are_invalid_argument(
    url: str, kwargs: dict[str, int], problem: str
) -> None:
    with pytest.raises(InferenceServerException) as info:
        infer(url, "batched", 1, **kwargs)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "batched" in info.value.message() and problem in info.value.message()
    assert infer(url, "batched", 1, priority=1).as_numpy("Y").tolist() == [[2, 2]]


def test_model_config_reports_dynamic_batching(url: str) -> None:
    with grpcclient.InferenceServerClient(url) as client:
        config = client.get_model_config("batched", as_json=True)["config"]
    assert config["dynamic_batching"]["priority_levels"] == "2"
    assert config["dynamic_batching"]["default_queue_policy"]["max_queue_size"] == 16


def _timed(url: str, rows: int, after: float = 0.0) -> Any:
    """A call that sleeps ``after`` s, sends a batch of ``rows`` to "preferred", and returns
    (seconds from its send to its answer, the batch the model ran it in)."""

    def call() -> tuple[float, int]:
        time.sleep(after)
        sent = time.monotonic()
        result = infer(url, "preferred", rows, rows=rows)
        return time.monotonic() - sent, int(result.as_numpy("BATCH")[0, 0])

    return call


def test_a_request_larger_than_the_largest_preferred_size_runs_at_once(url: str) -> None:
    ((latency, batch),) = in_threads([_timed(url, 7)])
    assert batch == 7 and latency < DELAY_S / 2


def test_a_pending_batch_runs_at_once_when_the_next_request_would_pass_the_largest(
    url: str,
) -> None:
    # A 3 waits (not a preferred size); a 7 arriving 1 s later would pass 6 with it, so the
    # 3 runs then without it, and the 7 runs at once too: neither waits out the delay.
    (wait_3, batch_3), (wait_7, batch_7) = in_threads([_timed(url, 3), _timed(url, 7, 1.0)])
    assert (batch_3, batch_7) == (3, 7)
    assert 0.8 < wait_3 < DELAY_S - 1 and wait_7 < DELAY_S / 2


def test_a_pending_batch_runs_without_a_request_that_would_pass_the_largest(url: str) -> None:
    # 3 + 4 = 7 would pass 6: the 3 runs at once, the 4 alone waits out the delay.
    (wait_3, batch_3), (wait_4, batch_4) = in_threads([_timed(url, 3), _timed(url, 4, 0.3)])
    assert (batch_3, batch_4) == (3, 4)
    assert wait_3 < DELAY_S / 2 and wait_4 >= DELAY_S - 0.5
