"""Fixtures: the example repositories served on 127.0.0.1 port 0 (see inference_servers)."""

from __future__ import annotations

import importlib.util
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from asyncinfer.inference.app import build_server

from .inference_servers import EXAMPLES, EXPLICIT_REPOSITORY, REPOSITORY, ThreadedServer


@pytest.fixture(scope="session", autouse=True)
def example_onnx_models() -> None:
    """The example repositories' ONNX models (`make models`), built once if missing.

    Built in a subprocess, so that the onnx package is not imported into this process (the
    shared-memory leak test counts the process's descriptors and mappings).
    """
    if importlib.util.find_spec("onnx") is None:
        pytest.skip("the onnx package is not installed (the example ONNX models need it)")
    subprocess.run([sys.executable, str(EXAMPLES / "build_models.py")], check=True, timeout=120)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """The example repository (control mode none) served for a whole test module."""
    with ThreadedServer(lambda: build_server(REPOSITORY, grpc_port=0)) as address:
        yield address


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    """The example repository served over HTTP (and gRPC) for a whole test module, with client
    shared memory allowed; yields the HTTP HOST:PORT."""
    factory = lambda: build_server(  # noqa: E731
        REPOSITORY, grpc_port=0, http_port=0, allow_client_shm=True
    )
    server = ThreadedServer(factory)
    with server:
        yield server.http_address


@pytest.fixture
def explicit_http_url() -> Iterator[str]:
    """A fresh explicit-mode server over the model-control repository, over HTTP."""
    factory = lambda: build_server(  # noqa: E731
        EXPLICIT_REPOSITORY, grpc_port=0, http_port=0, model_control_mode="explicit"
    )
    server = ThreadedServer(factory)
    with server:
        yield server.http_address


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
