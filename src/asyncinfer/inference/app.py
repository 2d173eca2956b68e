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
from ..server import Server
from .latency import MetricsConfig
from .repository import CONTROL_MODES, ControlMode, ModelRepository
from .rpc import CONTEXTS
from .service import InferenceResources

__all__ = ["build_server"]

#: Triton's limit for both directions (INT32_MAX): clients may send and receive large tensors.
MAX_MESSAGE_BYTES = 2**31 - 1


def build_server(
    model_repository: str | pathlib.Path,
    *,
    host: str = "127.0.0.1",
    grpc_port: int = 8001,
    model_control_mode: ControlMode = "none",
    load_models: Sequence[str] = (),
    allow_client_shm: bool = False,
    workers: int = 1,
    poll_seconds: float = 15.0,
    metrics_port: int | None = None,
    auto_complete: bool = True,
    metrics_config: MetricsConfig | None = None,
) -> Server:
    """A Server for ``model_repository``; nothing is loaded until the server starts.

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
    repository = ModelRepository(
        model_repository,
        control_mode=model_control_mode,
        load_models=load_models,
        poll_seconds=poll_seconds,
        auto_complete=auto_complete,
    )
    server = Server(
        host=host,
        port=grpc_port,
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
        tracing=server.tracing,
        metrics=metrics_config,
    )
    server.add_service(resources, *CONTEXTS)
    return server
