from __future__ import annotations

import asyncinfer


def test_public_api_is_pinned() -> None:
    assert asyncinfer.__all__ == sorted(asyncinfer.__all__)
    assert set(asyncinfer.__all__) == {
        "AdmissionStatistics",
        "AsyncInferError",
        "BidiStreamContext",
        "CallInfo",
        "ClientStreamContext",
        "ConfigError",
        "Context",
        "Resources",
        "RpcError",
        "Server",
        "ServerConfig",
        "ServerStatistics",
        "ServerStreamContext",
        "UnaryContext",
        "UsageError",
        "__version__",
        "protos",
        "rpc_method",
        "serve",
    }
    for name in asyncinfer.__all__:
        assert hasattr(asyncinfer, name)
