"""Server configuration: a frozen dataclass, validated when it is constructed."""

from __future__ import annotations

import dataclasses
from typing import Literal

from .errors import ConfigError
from .restriction import Restrictions
from .tls import ServerTls
from .tracing.trace_settings import TraceConfig

__all__ = ["INFERENCE_RECEIVE_BYTES", "ServerConfig"]

MiB = 1024 * 1024
#: The inference service's receive limit (Triton's is INT32_MAX; the largest request of its
#: example clients is 602,112 bytes). gRPC inflates a compressed request only up to this limit
#: and then answers RESOURCE_EXHAUSTED "Decompressed message larger than max", so it also
#: bounds what one compressed request can make the server hold.
INFERENCE_RECEIVE_BYTES = 64 * MiB
LoopKind = Literal["auto", "uvloop", "asyncio"]


@dataclasses.dataclass(frozen=True, slots=True)
class ServerConfig:
    """Where and how a Server listens. Every limit is bounded by default."""

    host: str = "127.0.0.1"
    #: 0 picks a free port; Server.start() returns the bound one.
    port: int = 0
    #: Serve gRPC on ``port``. False: the server's front ends (HTTP) are all it serves, and
    #: it must have one; gRPC health, reflection and ``tls`` then have no port to apply to.
    serve_grpc: bool = True
    #: SO_REUSEPORT, chosen explicitly: required for workers > 1, off by default so that a port
    #: already in use is an error instead of a silent share with a stranger.
    reuse_port: bool = False
    #: Worker processes, each with its own event loop; 1 serves in the calling process.
    workers: int = 1
    #: Pin worker i to the CPUs of NUMA node i % nodes (affinity.cpus_for_worker).
    pin_workers: bool = False
    #: Seconds in-flight calls get to finish on a graceful stop before they are cancelled.
    grace: float = 5.0
    max_receive_message_bytes: int = 4 * MiB
    max_send_message_bytes: int = 4 * MiB
    #: Calls the gRPC core accepts at once across all RPCs; beyond it: RESOURCE_EXHAUSTED.
    max_concurrent_rpcs: int = 10_000
    #: "auto" runs uvloop when it is installed.
    loop: LoopKind = "auto"
    health: bool = True
    reflection: bool = True
    #: Prometheus metrics over HTTP on this port (same host); 0 picks a free one, None: off.
    #: With workers > 1 the supervisor serves it and sums the workers' metrics.
    metrics_port: int | None = None
    #: Where the metrics endpoint listens; None: the same host as gRPC. Workers of a supervisor
    #: use 127.0.0.1, since only the supervisor scrapes them.
    metrics_host: str | None = None
    #: TLS (and, with ``mutual``, client certificates) on the gRPC port; None: plaintext.
    tls: ServerTls | None = None
    #: Protocol groups that answer only calls with their key header (--grpc-restricted-protocol).
    restrictions: Restrictions = dataclasses.field(default_factory=Restrictions)
    #: Streaming calls (any RPC that streams requests or replies) open at once, in total and
    #: per client connection; one more is refused with RESOURCE_EXHAUSTED.
    max_streams: int = 4096
    max_streams_per_connection: int = 256
    #: Bytes of unary replies handed to gRPC and not yet sent (a client that does not read),
    #: in total and per connection; a reply beyond either is refused with RESOURCE_EXHAUSTED.
    max_unsent_reply_bytes: int = 512 * MiB
    max_unsent_reply_bytes_per_connection: int = 128 * MiB
    #: With workers > 1: a worker whose event loop has not answered the supervisor's liveness
    #: probe for this many seconds is killed and replaced (a stopped or wedged process).
    liveness_timeout: float = 10.0
    #: Tracing (OpenTelemetry) as the server starts: off unless its level says (--trace-config).
    trace: TraceConfig = dataclasses.field(default_factory=TraceConfig)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, not {self.port}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port must be 0..65535 or None, not {self.metrics_port}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, not {self.workers}")
        if self.workers > 1 and not self.reuse_port:
            raise ConfigError(
                f"workers={self.workers} share one port through SO_REUSEPORT: "
                "set reuse_port=True (or --reuse-port) to allow it"
            )
        if not self.serve_grpc and self.tls is not None:
            raise ConfigError(
                "tls secures the gRPC port, and serve_grpc=False serves none: drop one of them "
                "(the HTTP front end takes its own TLS)"
            )
        if self.grace < 0:
            raise ConfigError(f"grace must be seconds >= 0, not {self.grace}")
        if self.liveness_timeout <= 0:
            raise ConfigError(f"liveness_timeout must be seconds > 0, not {self.liveness_timeout}")
        for name in (
            "max_receive_message_bytes",
            "max_send_message_bytes",
            "max_concurrent_rpcs",
            "max_streams",
            "max_streams_per_connection",
            "max_unsent_reply_bytes",
            "max_unsent_reply_bytes_per_connection",
        ):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"{name} must be positive, not {value}")
        if self.loop not in ("auto", "uvloop", "asyncio"):
            raise ConfigError(f"loop must be 'auto', 'uvloop' or 'asyncio', not {self.loop!r}")

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def grpc_options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.so_reuseport", int(self.reuse_port)),
            ("grpc.max_receive_message_length", self.max_receive_message_bytes),
            ("grpc.max_send_message_length", self.max_send_message_bytes),
        ]
