"""Example 06 runs: `asyncinfer serve` on the example repository, the client sieges the batched
ONNX model and reports the batches the server formed."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from asyncinfer.testing import ServerProcess

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
pytest.importorskip("onnx", reason="the onnx package is not installed")

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_client_sieges_mlp_onnx_and_reports_batches() -> None:
    runpy.run_path(str(EXAMPLES / "build_models.py"))["build_all"](quiet=True)
    serve = [
        *(sys.executable, "-m", "asyncinfer.cli", "serve", "--grpc-port", "0"),
        *("--model-repository", str(EXAMPLES / "model_repository")),
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
    match = re.search(r"mlp_onnx: (\d+) inferences in (\d+) executions", done.stdout)
    assert match is not None, done.stdout
    inferences, executions = int(match[1]), int(match[2])
    assert inferences >= 90 and 1 <= executions <= inferences
