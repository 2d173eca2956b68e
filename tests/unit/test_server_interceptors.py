"""Server(interceptors=...) accepts grpc.aio server interceptors only."""

from __future__ import annotations

import pytest

from asyncinfer import ConfigError, Server


def test_interceptors_must_be_grpc_aio_server_interceptors() -> None:
    with pytest.raises(ConfigError, match=r"grpc\.aio\.ServerInterceptor instances"):
        Server(interceptors=[lambda details: None])  # type: ignore[list-item]
