"""Example 06 runs: `asyncinfer serve` on the example repository, the client sieges the batched
ONNX model and reports the batches the server formed; those batches add up to the answered
requests, and requests that wait together in the queue run as one execute."""

from __future__ import annotations

import json
import re
import runpy
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from asyncinfer.testing import ServerProcess

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
pytest.importorskip("onnx", reason="the onnx package is not installed")
grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed")

EXAMPLES = Path(__file__).parents[2] / "examples"
MODEL = "mlp_onnx"


def batch_stats(url: str) -> tuple[int, int, dict[int, int]]:
    """inference_count, execution_count, and executions per batch size of the model."""
    with grpcclient.InferenceServerClient(url) as client:
        (stats,) = client.get_inference_statistics(MODEL).model_stats
    sizes = {b.batch_size: b.compute_infer.count for b in stats.batch_stats}
    return stats.inference_count, stats.execution_count, sizes


def infer_in_threads(url: str, count: int) -> None:
    def one() -> None:
        with grpcclient.InferenceServerClient(url) as client:
            features = np.zeros((1, 256), np.float32)
            infer_input = grpcclient.InferInput("features", [1, 256], "FP32")
            infer_input.set_data_from_numpy(features)
            result = client.infer(MODEL, [infer_input], client_timeout=60)
            assert result.as_numpy("scores").shape == (1, 16)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def test_client_sieges_mlp_onnx_and_reports_batches() -> None:
    runpy.run_path(str(EXAMPLES / "build_models.py"))["build_all"](quiet=True)
    serve = [
        *(sys.executable, "-m", "asyncinfer.cli", "serve", "--grpc-port", "0"),
        *("--allow-http", "false", "--allow-metrics", "false"),
        *("--model-repository", str(EXAMPLES / "model_repository")),
        *("--model-control-mode", "explicit", "--load-model", MODEL),
    ]
    with ServerProcess(serve) as proc:
        done = subprocess.run(
            [
                *(sys.executable, str(EXAMPLES / "06_dynamic_batching" / "client.py")),
                *(proc.address, "--seconds", "0.5", "--rate", "200"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        ok = re.search(r"\] (\d+)/\d+ ok", done.stdout)
        match = re.search(rf"{MODEL}: (\d+) inferences in (\d+) executions", done.stdout)
        assert ok is not None and match is not None, done.stdout
        inferences, executions = int(match[1]), int(match[2])
        # Every answered call is one inference, and the batches hold exactly those.
        assert inferences == int(ok[1]) > 0
        _, _, sizes = batch_stats(proc.address)
        assert sum(size * count for size, count in sizes.items()) == inferences
        assert sum(sizes.values()) == executions

        # Requests waiting together run as one batch: with a long queue delay and a preferred
        # size of 4, the batcher holds the first requests until the fourth arrives.
        # (The JSON override replaces config.pbtxt's dynamic_batching block.)
        config = {
            "dynamic_batching": {
                "preferred_batch_size": [4],
                "max_queue_delay_microseconds": 30_000_000,
            }
        }
        with grpcclient.InferenceServerClient(proc.address) as client:
            client.load_model(MODEL, config=json.dumps(config))  # fresh statistics
        infer_in_threads(proc.address, 4)
        assert batch_stats(proc.address) == (4, 1, {4: 1})
