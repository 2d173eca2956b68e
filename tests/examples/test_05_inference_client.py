"""Example 02: `asyncinfer serve --model-repository` and the InferRunner + siege client script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from asyncinfer.testing import ServerProcess

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_inference_client_script_against_the_cli_server() -> None:
    argv = [
        sys.executable,
        "-m",
        "asyncinfer.cli",
        "serve",
        "--grpc-port",
        "0",
        "--allow-http",
        "false",
        "--allow-metrics",
        "false",
        "--model-repository",
        str(EXAMPLES / "model_repository"),
    ]
    with ServerProcess(argv) as proc:
        done = subprocess.run(
            [
                sys.executable,
                str(EXAMPLES / "05_inference_client" / "client.py"),
                proc.address,
                "--seconds",
                "0.5",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("[runner x16]") and " ok in " in line for line in lines)
    assert any(line.startswith("[siege]") and " ok in " in line for line in lines)
