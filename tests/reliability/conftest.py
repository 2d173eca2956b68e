"""The reliability suite's servers: `asyncinfer serve` processes over a small repository.

The counts here are CI's (each scenario's figure is a fraction of bench/soak.py's full count,
named in each test); the scenarios themselves are bench/_reliability.py's.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from .._bench import reliability


@pytest.fixture(scope="session")
def repository(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    reliability.raise_fd_limit()
    return reliability.small_repository(tmp_path_factory.mktemp("reliability") / "models")


@pytest.fixture(scope="module")
def server(repository: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One server (control mode none) for a test module."""
    running = reliability.serve(
        repository, tmp_path_factory.mktemp("logs"), ready_models=("simple", "mlp_onnx")
    )
    try:
        yield running
    finally:
        running.stop()
