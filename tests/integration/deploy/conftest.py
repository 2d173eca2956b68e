"""Fixtures of the deployment tests: nginx, and inference servers as separate processes that
can be stopped, killed and started again on the same port."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncinfer.testing import ServerProcess

from ..._nginx import ensure_nginx, nginx_lb

REPOSITORY = Path(__file__).resolve().parents[3] / "examples" / "model_repository"


@pytest.fixture(scope="session")
def nginx() -> str:
    return ensure_nginx()


class Backends:
    """``asyncinfer serve`` processes over the example repository, loading only ``models``."""

    def __init__(self, models: tuple[str, ...], grace: float) -> None:
        self.models = models
        self.grace = grace
        self.ports: list[int] = []
        self.processes: list[ServerProcess] = []

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.ports]

    def argv(self, port: int) -> list[str]:
        loads = [arg for model in self.models for arg in ("--load-model", model)]
        return [
            sys.executable, "-m", "asyncinfer.cli", "serve", "--model-repository",
            str(REPOSITORY), "--model-control-mode", "explicit", *loads,
            "--grpc-port", str(port), "--grace", str(self.grace), "--log-format", "text",
            "--allow-http", "false", "--allow-metrics", "false",
        ]  # fmt: skip

    def start(self, count: int) -> Backends:
        for _ in range(count):
            port = nginx_lb.free_port()
            self.ports.append(port)
            self.processes.append(ServerProcess(self.argv(port), timeout=60).start())
        return self

    def restart(self, index: int) -> int:
        """SIGTERM (graceful drain) and start again on the same port; the old exit code."""
        code = self.processes[index].stop(timeout=self.grace + 10)
        self.processes[index] = ServerProcess(self.argv(self.ports[index]), timeout=60).start()
        return code

    def kill(self, index: int) -> None:
        os.kill(self.processes[index].pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()


@pytest.fixture
def backends() -> Iterator[Backends]:
    """Call ``.start(n)``; every backend is stopped at the end of the test."""
    servers = Backends(("simple", "simple_sequence"), grace=5.0)
    try:
        yield servers
    finally:
        servers.stop_all()
