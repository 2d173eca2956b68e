"""The server factory for the inference service: one Server serving one model repository.

``build_server`` is a module-level function, so ``functools.partial(build_server, ...)`` is
picklable and each worker process can build its own server from it.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from .. import __version__
from ..config import INFERENCE_RECEIVE_BYTES
from ..errors import ConfigError
from ..memory.host_heap import tune_host_heap
from ..restriction import Restrictions
from ..server import Server
from ..tls import ServerTls
from .http import HttpFrontEnd
from .http.front_end import HTTP_BODY_TIMEOUT
from .latency import MetricsConfig
from .repository import CONTROL_MODES, ConfigBounds, ControlMode, ModelRepository
from .rpc import CONTEXTS
from .service import InferenceResources

__all__ = ["build_server"]

#: Triton's limit for both directions (INT32_MAX): clients may send and receive large tensors.
MAX_MESSAGE_BYTES = 2**31 - 1


def build_server(
    model_repository: str | pathlib.Path,
    *,
    host: str = "127.0.0.1",
    grpc_port: int | None = 8001,
    model_control_mode: ControlMode = "none",
    load_models: Sequence[str] = (),
    allow_client_shm: bool = False,
    workers: int = 1,
    poll_seconds: float = 15.0,
    metrics_port: int | None = None,
    http_port: int | None = None,
    http_host: str | None = None,
    http_body_timeout: float = HTTP_BODY_TIMEOUT,
    http_tls: ServerTls | None = None,
    http_restrictions: Restrictions | None = None,
    config_bounds: ConfigBounds | None = None,
    strict_readiness: bool = True,
    auto_complete: bool = True,
    metrics_config: MetricsConfig | None = None,
) -> Server:
    """A Server for ``model_repository``; nothing is loaded until the server starts.

    ``grpc_port`` None serves no gRPC (tritonserver's ``--allow-grpc false``): HTTP alone.
    ``http_port`` also serves the KServe v2 REST protocol there (tritonserver's 8000; None:
    off, the default here so that tests and embedders choose; 0 picks a free one), on
    ``http_host`` (None: ``host``), on the same loop and over the same models as gRPC; over
    TLS with ``http_tls``, and with ``http_restrictions`` (tritonserver's
    ``--http-restricted-api``) on its APIs.
    ``auto_complete``: complete model configs from the model files, as Triton does
    (repository/auto_complete.py); False is ``--disable-auto-complete-config``.
    """
    if model_control_mode not in CONTROL_MODES:
        raise ConfigError(
            f"model control mode must be one of {CONTROL_MODES}, not {model_control_mode!r}"
        )
    if load_models and model_control_mode != "explicit":
        raise ConfigError(
            "--load-model only applies with --model-control-mode explicit (the other modes "
            "load every model in the repository)"
        )
    if workers > 1 and allow_client_shm:
        raise ConfigError(
            "--allow-client-shm needs one worker: regions are registered per process, so a "
            "region registered through one worker would be unknown to the others"
        )
    if workers > 1 and model_control_mode == "explicit":
        raise ConfigError(
            "--model-control-mode explicit needs a single worker: each worker process has its "
            "own models, so a load through one worker would not reach the others"
        )
    if grpc_port is None and http_port is None:
        raise ConfigError(
            "nothing to serve: gRPC and HTTP are both off; allow one of them "
            "(--allow-grpc, --allow-http) or give a grpc_port or http_port"
        )
    # Each worker process builds its server here: its heap reuses large tensors' blocks.
    tune_host_heap()
    if workers > 1 and http_port == 0:
        raise ConfigError(
            "http_port 0 with workers > 1: each worker would pick a different port; give a "
            "fixed --http-port, which the workers share through SO_REUSEPORT"
        )
    repository = ModelRepository(
        model_repository,
        control_mode=model_control_mode,
        load_models=load_models,
        poll_seconds=poll_seconds,
        bounds=config_bounds,
        auto_complete=auto_complete,
    )
    server = Server(
        host=host,
        port=0 if grpc_port is None else grpc_port,
        serve_grpc=grpc_port is not None,
        workers=workers,
        reuse_port=workers > 1,
        max_receive_message_bytes=INFERENCE_RECEIVE_BYTES,
        max_send_message_bytes=MAX_MESSAGE_BYTES,
        metrics_port=metrics_port,
    )
    resources = InferenceResources(
        repository,
        version=__version__,
        allow_client_shm=allow_client_shm,
        strict_readiness=strict_readiness,
        tracing=server.tracing,
        metrics=metrics_config,
    )
    server.add_service(resources, *CONTEXTS)
    if http_port is not None:
        server.add_front_end(
            HttpFrontEnd(
                resources,
                host=http_host,
                port=http_port,
                reuse_port=workers > 1,
                body_timeout=http_body_timeout,
                tls=http_tls,
                restrictions=http_restrictions,
            )
        )
    return server
