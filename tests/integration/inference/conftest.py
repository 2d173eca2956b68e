"""Fixtures: the example repositories served on 127.0.0.1 port 0 (see inference_servers)."""

from __future__ import annotations

import pathlib
import runpy
import shutil
from collections.abc import Iterator

import pytest

from asyncinfer.inference.app import build_server

from .inference_servers import EXAMPLES, EXPLICIT_REPOSITORY, REPOSITORY, ThreadedServer


@pytest.fixture(scope="session", autouse=True)
def example_onnx_models() -> None:
    """The example repositories' ONNX models (`make models`), built once if missing."""
    pytest.importorskip("onnx", reason="the onnx package is not installed")
    runpy.run_path(str(EXAMPLES / "build_models.py"))["build_all"](quiet=True)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """The example repository (control mode none) served for a whole test module."""
    with ThreadedServer(lambda: build_server(REPOSITORY, grpc_port=0)) as address:
        yield address


@pytest.fixture
def explicit_url() -> Iterator[str]:
    """A fresh explicit-mode server over the model-control repository, nothing loaded."""
    factory = lambda: build_server(  # noqa: E731
        EXPLICIT_REPOSITORY, grpc_port=0, model_control_mode="explicit"
    )
    with ThreadedServer(factory) as address:
        yield address


@pytest.fixture
def scratch_repository(tmp_path: pathlib.Path) -> pathlib.Path:
    """A writable copy of the example repository."""
    target = tmp_path / "models"
    shutil.copytree(REPOSITORY, target)
    return target
