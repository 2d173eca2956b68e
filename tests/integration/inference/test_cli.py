"""`asyncinfer serve --model-repository` in a child process, driven by tritonclient and by
`asyncinfer siege` (which finds ModelInfer through server reflection)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from asyncinfer.testing import ServerProcess

from .inference_servers import REPOSITORY

CLI = [sys.executable, "-m", "asyncinfer.cli"]


def test_serve_model_repository_and_siege_it(tmp_path: Path) -> None:
    argv = [*CLI, "serve", "--model-repository", str(REPOSITORY), "--grpc-port", "0"]
    with ServerProcess(argv) as server:
        with grpcclient.InferenceServerClient(server.address) as client:
            assert client.is_model_ready("simple")
        a = np.arange(16, dtype=np.int32)
        request = {
            "model_name": "simple",
            "inputs": [
                {"name": n, "datatype": "INT32", "shape": ["1", "16"]} for n in ("INPUT0", "INPUT1")
            ],
            "raw_input_contents": [base64.b64encode(a.tobytes()).decode()] * 2,
        }
        report = tmp_path / "siege.json"
        done = subprocess.run(
            [
                *CLI,
                "siege",
                server.address,
                "/inference.GRPCInferenceService/ModelInfer",
                "--request",
                json.dumps(request),
                "--rate",
                "200",
                "--duration",
                "1",
                "--json",
                str(report),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    result = json.loads(report.read_text())
    assert result["summary"]["failed"] == 0 and result["summary"]["ok"] > 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--model-repository", "x", "--metrics-port", "70000"], "metrics_port must be 0..65535"),
        (["--model-repository", "x", "--allow-client-shm", "--workers", "2"], "one worker"),
        (["--app", "m:f", "--load-model", "simple"], "needs --model-repository"),
        (["--model-repository", "x", "--load-model", "simple"], "only applies with"),
    ],
)
def test_serve_flag_errors(flags: list[str], message: str) -> None:
    done = subprocess.run([*CLI, "serve", *flags], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr


@pytest.mark.parametrize(("flag", "ready"), [([], False), (["--strict-readiness=false"], True)])
def test_server_readiness_follows_strict_readiness(
    tmp_path: Path, flag: list[str], ready: bool
) -> None:

    shutil.copytree(REPOSITORY / "simple", tmp_path / "simple", symlinks=True)
    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "config.pbtxt").write_text(
        (REPOSITORY / "simple" / "config.pbtxt").read_text().replace('"simple"', '"broken"')
    )
    (tmp_path / "broken" / "1" / "model.py").write_text("raise ImportError('broken on purpose')\n")
    argv = [*CLI, "serve", "--model-repository", str(tmp_path), "--grpc-port", "0", *flag]
    with ServerProcess(argv) as server, grpcclient.InferenceServerClient(server.address) as client:
        assert client.is_server_live() and client.is_model_ready("simple")
        assert not client.is_model_ready("broken")
        assert client.is_server_ready() is ready  # strict (the default): a failed model counts
