"""build_server refuses settings that cannot work across worker processes."""

from __future__ import annotations

import pathlib

import pytest

from asyncinfer.errors import ConfigError
from asyncinfer.inference.app import build_server


def test_client_shared_memory_needs_a_single_worker(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="--allow-client-shm needs one worker"):
        build_server(tmp_path, grpc_port=0, allow_client_shm=True, workers=2)
    assert build_server(tmp_path, grpc_port=0, allow_client_shm=True, workers=1) is not None
