"""asyncinfer: fast custom inference microservices on grpc.aio.

Subclass a Context per RPC and a Resources per service, add them to a Server, and serve::

    server = Server(port=50051)
    server.add_service(MyResources(), Ping, Echo)
    asyncinfer.serve(lambda: server)
"""

import importlib.metadata

from .admission import AdmissionStatistics
from .config import ServerConfig
from .context import (
    BidiStreamContext,
    CallInfo,
    ClientStreamContext,
    Context,
    ServerStreamContext,
    UnaryContext,
    rpc_method,
)
from .errors import (
    AsyncInferError,
    ConfigError,
    RpcError,
    UsageError,
)
from .resources import Resources
from .server import Server, ServerStatistics
from .workers import serve

#: The installed distribution's version: pyproject.toml is its only source.
__version__ = importlib.metadata.version("asyncinfer")

__all__ = [
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
    "rpc_method",
    "serve",
]
