"""Example 09 runs on its own: a call with a known token is answered with its subject, a call
without one is refused with UNAUTHENTICATED by the interceptor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from asyncinfer.testing import ServerProcess

EXAMPLE = Path(__file__).parents[2] / "examples" / "09_bearer_token"


def _client(address: str, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE / "client.py"), address, "--token", token],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bearer_token_interceptor() -> None:
    server = [sys.executable, str(EXAMPLE / "server.py"), "--port", "0", "--token", "alice=s3cret"]
    with ServerProcess(server) as proc:
        good = _client(proc.address, "s3cret")
        wrong = _client(proc.address, "guess")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "with token: subject=alice" in good.stdout
    assert "without token: UNAUTHENTICATED: send 'authorization: Bearer <token>'" in good.stdout
    assert wrong.returncode != 0
    assert "UNAUTHENTICATED" in wrong.stderr
