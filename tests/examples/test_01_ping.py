"""Example 01 runs on its own, and `make demo`'s script prints its summary and exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from asyncinfer.testing import ServerProcess

EXAMPLE = Path(__file__).parents[2] / "examples" / "01_ping"


def test_server_and_client_scripts() -> None:
    with ServerProcess([sys.executable, str(EXAMPLE / "server.py"), "--port", "0"]) as proc:
        done = subprocess.run(
            [sys.executable, str(EXAMPLE / "client.py"), proc.address, "--seconds", "0.5"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    for mode in ("[sync]", "[async c=16]", "[siege]"):
        assert any(line.startswith(mode) and " ok in " in line for line in done.stdout.splitlines())


def test_demo_prints_summary_and_exits_zero() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE.parent / "demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "asyncinfer demo" in done.stdout and "0 failed calls" in done.stdout
