"""The inference service's shared state: one InferenceResources that every front end's calls use.

It owns the model repository (and its poll task), the in-process call API over it, the
shared-memory registries and the trace and log settings; the gRPC Contexts (rpc/) and the
HTTP front end (http/) read and change the same objects, so the two protocols cannot disagree.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

from prometheus_client.registry import Collector

from ..resources import Resources
from ..tracing import Tracing
from . import latency
from .inprocess import ModelCaller
from .latency import MetricsConfig
from .metrics import InferenceCollector
from .repository import ModelRepository
from .server_settings import LogSettings, TraceSettings
from .shared_memory import SharedMemory

__all__ = ["EXTENSIONS", "SERVER_NAME", "InferenceResources"]

SERVER_NAME = "triton"  # Triton's clients check this name
#: Extensions that always work end to end in this server; shared memory is added when it works.
EXTENSIONS = ("classification", "model_configuration", "model_repository", "statistics")


class InferenceResources(Resources):
    """The model repository every inference call shares, the poll task when polling, the
    shared-memory registries, and the trace and log settings."""

    def __init__(
        self,
        repository: ModelRepository,
        *,
        version: str = "",
        allow_client_shm: bool = False,
        strict_readiness: bool = True,
        tracing: Tracing | None = None,
        metrics: MetricsConfig | None = None,
    ) -> None:
        self.repository = repository
        #: tritonserver's --strict-readiness: the server is ready only while every model
        #: asked to load is ready (True, its default); else whenever it has started.
        self.strict_readiness = strict_readiness
        #: In-process calls to the repository's models, for Contexts added to this service.
        self.models = ModelCaller(repository)
        self.version = version
        self.shm = SharedMemory(allow_client_shm=allow_client_shm)
        #: The server's tracing (pass ``server.tracing``); its settings are TraceSetting's.
        self.tracing = tracing if tracing is not None else Tracing()
        self.trace_settings: TraceSettings = self.tracing.settings
        self.log_settings = LogSettings(lambda: self.trace_settings.shared_by_workers)
        #: --metrics-config: latency histograms (switched on for this process at start()).
        self.metrics_config = metrics or MetricsConfig()
        self._started = False
        self._background: asyncio.Task[None] | None = None

    async def start(self) -> None:
        latency.configure(self.metrics_config)  # before the models load: they read it
        await self.repository.start()
        if self.repository.control_mode == "poll":
            # The one root task of these Resources; stop() cancels it (and so every task in
            # its TaskGroup) and waits for it before the repository stops.
            self._background = asyncio.get_running_loop().create_task(
                self._run_background(), name="inference-background"
            )
        self._started = True

    async def _run_background(self) -> None:
        """Every background job of the service, owned by one TaskGroup."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.repository.poll_forever(), name="repository-poll")

    async def stop(self) -> None:
        self._started = False
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background
            self._background = None
        await self.repository.stop()
        if self.metrics_config.histogram_latencies:
            latency.configure(MetricsConfig())  # off again: the switch is per process
        self.shm.close()  # after the last call drained: no request holds a lease any more

    def ready(self) -> bool:
        """ServerReady (and gRPC health checking, and the HTTP front end's /v2/health/ready):
        started, and with strict readiness every model asked to load ready."""
        if not self._started:
            return False
        return not self.strict_readiness or self.repository.all_ready()

    def extensions(self) -> list[str]:
        return sorted((*EXTENSIONS, *self.shm.extensions()))

    def statistics(self) -> dict[str, Any]:
        return self.repository.statistics()

    def collectors(self) -> Iterable[Collector]:
        return (InferenceCollector(self.repository, self.metrics_config),)
