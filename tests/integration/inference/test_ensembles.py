"""Ensembles and in-process model calls, driven by tritonclient against real servers.

The example repository's ensemble_classify (python -> onnxruntime -> python) and bls_add_sub;
purpose-built repositories (written to tmp_path) for a diamond DAG whose branches must run
concurrently, bad ensemble configs, and a failing step.
"""

from __future__ import annotations

import pathlib
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from asyncinfer._perf_analyzer import run_perf_analyzer
from asyncinfer.inference.app import build_server

from .inference_servers import ThreadedServer

pytest.importorskip("onnxruntime", reason="ensemble_classify's middle step is an ONNX model")


def infer(
    client: triton.InferenceServerClient, model: str, **arrays: np.ndarray
) -> triton.InferResult:
    inputs = []
    for name, array in arrays.items():
        datatype = "BYTES" if array.dtype == np.object_ else triton.np_to_triton_dtype(array.dtype)
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return client.infer(model, inputs)


@pytest.fixture(scope="module")
def client(url: str) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(url) as client:
        yield client


def test_ensemble_classify_equals_its_steps_called_one_by_one(
    client: triton.InferenceServerClient,
) -> None:
    image = (np.arange(48, dtype=np.uint8) * 5).reshape(3, 16)
    before = client.get_inference_statistics("classifier_onnx").model_stats[0].inference_count
    result = infer(client, "ensemble_classify", IMAGE=image)
    features = infer(client, "preprocess", IMAGE=image).as_numpy("FEATURES")
    scores = infer(client, "classifier_onnx", features=features).as_numpy("scores")
    post = infer(client, "postprocess", SCORES=scores)
    np.testing.assert_array_equal(result.as_numpy("LABEL"), post.as_numpy("LABEL"))
    np.testing.assert_allclose(result.as_numpy("PROBABILITIES"), post.as_numpy("PROBABILITIES"))
    assert result.as_numpy("PROBABILITIES").shape == (3, 4)
    # The composing model counted both calls: the ensemble's step and the direct one.
    after = client.get_inference_statistics("classifier_onnx").model_stats[0].inference_count
    assert after - before == 6


def test_ensemble_stream_responses_echo_the_sequence_flags(url: str) -> None:
    image = triton.InferInput("IMAGE", [1, 16], "UINT8")
    image.set_data_from_numpy(np.arange(16, dtype=np.uint8).reshape(1, 16))
    answers: list[Any] = []
    done = threading.Event()

    def callback(result: Any, error: Any) -> None:
        answers.append(error or result)
        if len(answers) == 4:
            done.set()

    flags = [(True, False), (False, False), (False, True)]
    with triton.InferenceServerClient(url) as client:
        client.start_stream(callback=callback)
        for index, (start, end) in enumerate(flags):
            client.async_stream_infer(
                "ensemble_classify",
                [image],
                request_id=str(index),
                sequence_id=7,
                sequence_start=start,
                sequence_end=end,
            )
        client.async_stream_infer("ensemble_classify", [image], request_id="plain")
        assert done.wait(30)
        client.stop_stream()
    by_id = {answer.get_response().id: answer.get_response() for answer in answers}
    for index, (start, end) in enumerate(flags):
        parameters = by_id[str(index)].parameters
        assert parameters["sequence_start"].bool_param is start
        assert parameters["sequence_end"].bool_param is end
    assert "sequence_start" not in by_id["plain"].parameters  # not a sequence: nothing echoed


def test_ensemble_config_and_metadata_as_triton_reports_them(
    client: triton.InferenceServerClient,
) -> None:
    config = client.get_model_config("ensemble_classify").config
    assert config.platform == "ensemble"
    steps = config.ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["preprocess", "classifier_onnx", "postprocess"]
    assert dict(steps[1].input_map) == {"features": "features"}
    metadata = client.get_model_metadata("ensemble_classify")
    assert metadata.platform == "ensemble"
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [
        ("LABEL", "BYTES", [-1, 1]),
        ("PROBABILITIES", "FP32", [-1, 4]),
    ]
    assert len(client.get_inference_statistics("ensemble_classify").model_stats) == 1


def test_ensemble_requested_output_only(client: triton.InferenceServerClient) -> None:
    image = triton.InferInput("IMAGE", [1, 16], "UINT8")
    image.set_data_from_numpy(np.zeros((1, 16), np.uint8))
    result = client.infer(
        "ensemble_classify", [image], outputs=[triton.InferRequestedOutput("LABEL")]
    )
    assert result.as_numpy("LABEL").shape == (1, 1)
    assert result.as_numpy("PROBABILITIES") is None


def test_bad_input_to_an_ensemble_is_invalid_argument(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="IMAGE") as caught:
        infer(client, "ensemble_classify", IMAGE=np.zeros((1, 16), np.float32))
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_bls_model_calls_simple_in_process(client: triton.InferenceServerClient) -> None:
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.full((1, 16), 5, dtype=np.int32)
    before = client.get_inference_statistics("simple").model_stats[0].inference_count
    result = infer(client, "bls_add_sub", INPUT0=a, INPUT1=b)
    np.testing.assert_array_equal(result.as_numpy("SUM"), a + b)
    np.testing.assert_array_equal(result.as_numpy("ABS_DIFF"), np.abs(a - b))
    after = client.get_inference_statistics("simple").model_stats[0].inference_count
    assert after - before == 2  # some differences were negative: the swapped call ran too
    infer(client, "bls_add_sub", INPUT0=b + 20, INPUT1=b)
    final = client.get_inference_statistics("simple").model_stats[0].inference_count
    assert final - after == 1  # all differences positive: one call


# --------------------------------------------------------------- purpose-built repositories


def model(root: pathlib.Path, name: str, config: str, code: str | None = None) -> None:
    version = root / name / "1"
    version.mkdir(parents=True)
    (root / name / "config.pbtxt").write_text(f'name: "{name}"\n' + textwrap.dedent(config))
    if code is not None:
        (version / "model.py").write_text(textwrap.dedent(code))


ADD_ONE = """
    from asyncinfer.inference.python_model import ModelError, Request, Response, Tensor

    class Model:
        async def execute(self, requests: list[Request]) -> list[Response]:
            out = []
            for r in requests:
                x = r.input("X").as_numpy()
                if (x < 0).any():
                    out.append(Response(error=ModelError("negative input")))
                else:
                    out.append(Response([Tensor("Y", x + 1)]))
            return out
"""
# Each branch announces itself and waits for the other one: run one after the other, the first
# would wait for the second forever (and fail after 10 s); run concurrently, both go on.
RENDEZVOUS = """
    import asyncio, sys, types
    from asyncinfer.inference.python_model import ModelError, Request, Response, Tensor

    SHARED = sys.modules.setdefault("ensemble_rendezvous", types.ModuleType("ensemble_rendezvous"))

    class Model:
        def initialize(self, args):
            self.me = args["model_name"]
            self.other = "branch_b" if self.me == "branch_a" else "branch_a"

        async def execute(self, requests: list[Request]) -> list[Response]:
            events = SHARED.__dict__.setdefault("events", {})
            mine = events.setdefault(self.me, asyncio.Event())
            theirs = events.setdefault(self.other, asyncio.Event())
            mine.set()
            try:
                await asyncio.wait_for(theirs.wait(), 10)
            except TimeoutError:
                return [Response(error=ModelError("the other branch never ran"))] * len(requests)
            x = requests[0].input("X").as_numpy()
            factor = 2 if self.me == "branch_a" else 3
            return [Response([Tensor("Y", x * factor)])]
"""
JOIN = """
    from asyncinfer.inference.python_model import Request, Response, Tensor

    class Model:
        async def execute(self, requests: list[Request]) -> list[Response]:
            return [Response([Tensor("Z", r.input("A").as_numpy() + r.input("B").as_numpy())])
                    for r in requests]
"""
ONE_IN_ONE_OUT = """
    backend: "python"
    max_batch_size: 0
    input [ { name: "X" data_type: TYPE_INT32 dims: [ 4 ] } ]
    output [ { name: "Y" data_type: TYPE_INT32 dims: [ 4 ] } ]
"""


def ensemble(steps: str, *, inputs: str = "X", outputs: str = "OUT", dtype: str = "TYPE_INT32",
             dims: str = "4") -> str:  # fmt: skip
    ins = ", ".join(f'{{ name: "{n}" data_type: TYPE_INT32 dims: [ 4 ] }}' for n in inputs.split())
    outs = ", ".join(
        f'{{ name: "{n}" data_type: {dtype} dims: [ {dims} ] }}' for n in outputs.split()
    )
    return (
        f'platform: "ensemble"\nmax_batch_size: 0\ninput [ {ins} ]\noutput [ {outs} ]\n'
        f"ensemble_scheduling {{ step [ {steps} ] }}\n"
    )


def step(model_name: str, inputs: dict[str, str], outputs: dict[str, str]) -> str:
    maps = "".join(f' input_map {{ key: "{k}" value: "{v}" }}' for k, v in inputs.items())
    maps += "".join(f' output_map {{ key: "{k}" value: "{v}" }}' for k, v in outputs.items())
    return f'{{ model_name: "{model_name}" model_version: -1{maps} }}'


@pytest.fixture
def repository(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "models"
    model(root, "add_one", ONE_IN_ONE_OUT, ADD_ONE)
    model(root, "branch_a", ONE_IN_ONE_OUT, RENDEZVOUS)
    model(root, "branch_b", ONE_IN_ONE_OUT, RENDEZVOUS)
    model(root, "join", """
        backend: "python"
        max_batch_size: 0
        input [ { name: "A" data_type: TYPE_INT32 dims: [ 4 ] },
                { name: "B" data_type: TYPE_INT32 dims: [ 4 ] } ]
        output [ { name: "Z" data_type: TYPE_INT32 dims: [ 4 ] } ]
    """, JOIN)  # fmt: skip
    return root


def serve_explicit(root: pathlib.Path) -> ThreadedServer:
    return ThreadedServer(lambda: build_server(root, grpc_port=0, model_control_mode="explicit"))


def test_independent_steps_run_concurrently_in_a_diamond(repository: pathlib.Path) -> None:
    steps = ", ".join([
        step("add_one", {"X": "X"}, {"Y": "x1"}),
        step("join", {"A": "a", "B": "b"}, {"Z": "OUT"}),  # listed before its producers
        step("branch_a", {"X": "x1"}, {"Y": "a"}),
        step("branch_b", {"X": "x1"}, {"Y": "b"}),
    ])  # fmt: skip
    model(repository, "diamond", ensemble(steps))
    with serve_explicit(repository) as url, triton.InferenceServerClient(url) as client:
        client.load_model("diamond")  # loads its four step models as well
        assert client.is_model_ready("branch_b")
        x = np.array([1, 2, 3, 4], np.int32)
        out = infer(client, "diamond", X=x).as_numpy("OUT")
        np.testing.assert_array_equal(out, (x + 1) * 2 + (x + 1) * 3)


def test_an_error_in_one_step_fails_that_request_only_naming_the_step(
    repository: pathlib.Path,
) -> None:
    steps = ", ".join([
        step("add_one", {"X": "X"}, {"Y": "t"}),
        step("add_one", {"X": "t"}, {"Y": "OUT"}),
    ])  # fmt: skip
    model(repository, "twice", ensemble(steps))
    with serve_explicit(repository) as url, triton.InferenceServerClient(url) as client:
        client.load_model("twice")
        with pytest.raises(InferenceServerException) as caught:
            infer(client, "twice", X=np.array([-5, 0, 0, 0], np.int32))
        message = caught.value.message()
        assert "ensemble 'twice' step 0 (model 'add_one')" in message
        assert "negative input" in message
        ok = infer(client, "twice", X=np.array([1, 2, 3, 4], np.int32)).as_numpy("OUT")
        np.testing.assert_array_equal(ok, [3, 4, 5, 6])
        stats = client.get_inference_statistics("twice").model_stats[0].inference_stats
        assert (stats.success.count, stats.fail.count) == (1, 1)


BAD_CONFIGS = {
    "cycle": (
        ", ".join([
            step("add_one", {"X": "t2"}, {"Y": "t1"}),
            step("add_one", {"X": "t1"}, {"Y": "t2"}),
            step("join", {"A": "X", "B": "t2"}, {"Z": "OUT"}),
        ]),
        r"cycle: step 0 \(model 'add_one'\) reads tensor 't2'",
    ),
    "unproduced tensor": (
        step("add_one", {"X": "nowhere"}, {"Y": "OUT"}),
        r"step 0 \(model 'add_one'\) reads tensor 'nowhere'.*neither an ensemble input nor "
        "written by any step",
    ),
    "dtype mismatch": (
        step("add_one", {"X": "X"}, {"Y": "OUT"}),
        r"ensemble output 'OUT' is declared FP32, but the output of step 0 \(model 'add_one'\) "
        "is INT32",
    ),
    "shape mismatch": (
        step("add_one", {"X": "X"}, {"Y": "OUT"}),
        r"ensemble output 'OUT' is declared with shape \[8\], but the output of step 0",
    ),
    "unknown model input": (
        step("add_one", {"NOPE": "X"}, {"Y": "OUT"}),
        r"step 0 \(model 'add_one'\) maps input 'NOPE', which model 'add_one' does not have",
    ),
    "missing step model": (
        step("not_there", {"X": "X"}, {"Y": "OUT"}),
        r"its step model 'not_there' did not load",
    ),
    "output written twice": (
        ", ".join([step("add_one", {"X": "X"}, {"Y": "OUT"}),
                   step("add_one", {"X": "X"}, {"Y": "OUT"})]),
        r"tensor 'OUT' is written by both step 0 \(model 'add_one'\) and step 1",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_ensemble_configs_fail_the_load_naming_step_and_tensor(
    repository: pathlib.Path, case: str
) -> None:
    steps, message = BAD_CONFIGS[case]
    options = {"dtype": "TYPE_FP32"} if case == "dtype mismatch" else {}
    if case == "shape mismatch":
        options = {"dims": "8"}
    model(repository, "bad", ensemble(steps, **options))
    with serve_explicit(repository) as url, triton.InferenceServerClient(url) as client:
        with pytest.raises(InferenceServerException, match=message):
            client.load_model("bad")
        assert not client.is_model_ready("bad")
        client.load_model("add_one")  # the server goes on serving
        assert client.is_model_ready("add_one")


def test_an_ensemble_that_calls_itself_is_a_cycle(repository: pathlib.Path) -> None:
    model(repository, "selfish", ensemble(step("selfish", {"X": "X"}, {"OUT": "OUT"})))
    with (
        serve_explicit(repository) as url,
        triton.InferenceServerClient(url) as client,
        pytest.raises(InferenceServerException, match="calls the ensemble itself"),
    ):
        client.load_model("selfish")


def test_bls_reports_a_missing_callee_as_its_own_error(tmp_path: pathlib.Path) -> None:
    examples = pathlib.Path(__file__).resolve().parents[3] / "examples" / "model_repository"
    with serve_explicit(examples) as url, triton.InferenceServerClient(url) as client:
        client.load_model("bls_add_sub")
        a = np.zeros((1, 16), np.int32)
        with pytest.raises(InferenceServerException, match="calling 'simple' failed") as caught:
            infer(client, "bls_add_sub", INPUT0=a, INPUT1=a)
        assert "Request for unknown model" in caught.value.message()
        client.load_model("simple")
        result = infer(client, "bls_add_sub", INPUT0=a + 1, INPUT1=a)
        np.testing.assert_array_equal(result.as_numpy("SUM"), a + 1)


async def test_perf_analyzer_profiles_the_ensemble() -> None:
    from asyncinfer.testing import running

    from .inference_servers import REPOSITORY

    bounds: dict[str, Any] = {
        "measurement_interval_ms": 400, "stability_percent": 1000, "max_trials": 4, "kill_after": 90
    }  # fmt: skip
    async with running(build_server(REPOSITORY, grpc_port=0)) as address:
        result = await run_perf_analyzer(
            address, "ensemble_classify", concurrency=(1, 4, 3), **bounds
        )
    assert result.concurrencies == [1, 4]
    assert result.errors == []
    assert all(row.throughput > 0 for row in result.rows)


SLEEPY = """
    import asyncio
    from asyncinfer.inference.python_model import Request, Response, Tensor

    class Model:
        async def execute(self, requests: list[Request]) -> list[Response]:
            await asyncio.sleep(30)
            return [Response([Tensor("Y", r.input("X").as_numpy())]) for r in requests]
"""


def test_a_caller_giving_up_cancels_the_running_steps(repository: pathlib.Path) -> None:
    model(repository, "sleepy", ONE_IN_ONE_OUT, SLEEPY)
    steps = ", ".join([
        step("add_one", {"X": "X"}, {"Y": "t"}),
        step("sleepy", {"X": "t"}, {"Y": "OUT"}),
    ])  # fmt: skip
    model(repository, "slow", ensemble(steps))
    with serve_explicit(repository) as url, triton.InferenceServerClient(url) as client:
        client.load_model("slow")
        with pytest.raises(InferenceServerException) as caught:
            client.infer("slow", _int_inputs(), client_timeout=0.5)
        assert caught.value.status() == "StatusCode.DEADLINE_EXCEEDED"

        def sleepy_failed() -> bool:
            stats = client.get_inference_statistics("sleepy").model_stats[0].inference_stats
            return bool(stats.fail.count == 1)

        # The step was cancelled with the request (counted as failed), not left running 30 s.
        deadline = time.monotonic() + 10
        while not sleepy_failed() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sleepy_failed()
        add_one = client.get_inference_statistics("add_one").model_stats[0].inference_stats
        assert add_one.success.count == 1


def test_composing_models_keep_their_own_batching(repository: pathlib.Path) -> None:
    examples = pathlib.Path(__file__).resolve().parents[3] / "examples" / "model_repository"
    if not (examples / "mlp_onnx" / "1" / "model.onnx").is_file():
        pytest.skip("mlp_onnx/1/model.onnx is built by `make install`")
    (repository / "mlp_onnx").symlink_to(examples / "mlp_onnx")
    model(repository, "mlp_ensemble", """
        platform: "ensemble"
        max_batch_size: 32
        input [ { name: "IN" data_type: TYPE_FP32 dims: [ 256 ] } ]
        output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 16 ] } ]
        ensemble_scheduling { step [ { model_name: "mlp_onnx" model_version: -1
            input_map { key: "features" value: "IN" } output_map { key: "scores" value: "OUT" }
        } ] }
    """)  # fmt: skip
    with serve_explicit(repository) as url, triton.InferenceServerClient(url) as client:
        client.load_model("mlp_ensemble")
        features = np.random.default_rng(1).standard_normal((2, 256)).astype(np.float32)
        expected = infer(client, "mlp_onnx", features=features).as_numpy("scores")
        results: list[np.ndarray] = []

        def call() -> None:
            results.append(infer(client, "mlp_ensemble", IN=features).as_numpy("OUT"))

        threads = [threading.Thread(target=call) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(results) == 12
        for result in results:
            np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-5)
        stats = client.get_inference_statistics("mlp_onnx").model_stats[0]
        # The steps' requests went through mlp_onnx's dynamic batcher: every item is in one
        # of its batch executions, however the batcher grouped them.
        items = sum(b.batch_size * b.compute_infer.count for b in stats.batch_stats)
        assert stats.inference_count == items == 2 * 13
        assert stats.execution_count == sum(b.compute_infer.count for b in stats.batch_stats)


def _int_inputs() -> list[triton.InferInput]:
    tensor = triton.InferInput("X", [4], "INT32")
    tensor.set_data_from_numpy(np.arange(4, dtype=np.int32))
    return [tensor]
