"""The inference service's shared state and its control-plane RPCs (health, metadata, config,
statistics, repository index/load/unload), each a Context over one InferenceResources.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

from prometheus_client.registry import Collector

from ...context import UnaryContext, rpc_method
from ...errors import InvalidArgument, NotFound
from ...pb.inference import grpc_service_pb2 as pb
from ...resources import Resources
from ..inprocess import ModelCaller
from ..metrics import InferenceCollector
from ..repository.repository import ModelRepository
from ..shared_memory import SharedMemory

__all__ = [
    "EXTENSIONS",
    "SERVER_NAME",
    "InferenceResources",
    "ModelConfig",
    "ModelMetadata",
    "ModelReady",
    "ModelStatistics",
    "RepositoryIndex",
    "RepositoryModelLoad",
    "RepositoryModelUnload",
    "ServerLive",
    "ServerMetadata",
    "ServerReady",
]

SERVER_NAME = "triton"  # Triton's clients check this name
#: Extensions that always work end to end in this server; shared memory is added when it works.
EXTENSIONS = ("classification", "model_configuration", "model_repository", "statistics")
SERVICE = "GRPCInferenceService"


class InferenceResources(Resources):
    """The model repository every inference RPC shares, the poll task when polling, and the
    shared-memory registries."""

    def __init__(
        self, repository: ModelRepository, *, version: str = "", allow_client_shm: bool = False
    ) -> None:
        self.repository = repository
        #: In-process calls to the repository's models, for Contexts added to this service.
        self.models = ModelCaller(repository)
        self.version = version
        self.shm = SharedMemory(allow_client_shm=allow_client_shm)
        self._started = False
        self._background: asyncio.Task[None] | None = None

    async def start(self) -> None:
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
        self.shm.close()  # after the last call drained: no request holds a lease any more

    def ready(self) -> bool:
        return self._started

    def extensions(self) -> list[str]:
        return sorted((*EXTENSIONS, *self.shm.extensions()))

    def statistics(self) -> dict[str, Any]:
        return self.repository.statistics()

    def collectors(self) -> Iterable[Collector]:
        return (InferenceCollector(self.repository),)


class ServerLive(UnaryContext[pb.ServerLiveRequest, pb.ServerLiveResponse, InferenceResources]):
    method = rpc_method(pb, SERVICE, "ServerLive")

    async def execute(self, request: pb.ServerLiveRequest) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)


class ServerReady(UnaryContext[pb.ServerReadyRequest, pb.ServerReadyResponse, InferenceResources]):
    method = rpc_method(pb, SERVICE, "ServerReady")

    async def execute(self, request: pb.ServerReadyRequest) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.resources.ready())


class ModelReady(UnaryContext[pb.ModelReadyRequest, pb.ModelReadyResponse, InferenceResources]):
    method = rpc_method(pb, SERVICE, "ModelReady")

    async def execute(self, request: pb.ModelReadyRequest) -> pb.ModelReadyResponse:
        # Unknown or unloaded: ready=false with status OK, as Triton's clients expect.
        ready = self.resources.repository.is_ready(request.name, request.version)
        return pb.ModelReadyResponse(ready=ready)


class ServerMetadata(
    UnaryContext[pb.ServerMetadataRequest, pb.ServerMetadataResponse, InferenceResources]
):
    method = rpc_method(pb, SERVICE, "ServerMetadata")

    async def execute(self, request: pb.ServerMetadataRequest) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=self.resources.version, extensions=self.resources.extensions()
        )


class ModelMetadata(
    UnaryContext[pb.ModelMetadataRequest, pb.ModelMetadataResponse, InferenceResources]
):
    method = rpc_method(pb, SERVICE, "ModelMetadata")

    async def execute(self, request: pb.ModelMetadataRequest) -> pb.ModelMetadataResponse:
        repository = self.resources.repository
        model = repository.get(request.name, request.version)
        sig = model.signature
        reply = pb.ModelMetadataResponse(
            name=model.name,
            versions=[str(m.version) for m in repository.versions(model.name) or [model]],
            platform=model.config.platform or model.config.backend,
        )
        for specs, target in ((sig.inputs, reply.inputs), (sig.outputs, reply.outputs)):
            for spec in specs.values():
                target.add(
                    name=spec.name,
                    datatype=spec.datatype.wire,
                    shape=spec.shape(sig.max_batch_size),
                )
        return reply


class ModelConfig(UnaryContext[pb.ModelConfigRequest, pb.ModelConfigResponse, InferenceResources]):
    method = rpc_method(pb, SERVICE, "ModelConfig")

    async def execute(self, request: pb.ModelConfigRequest) -> pb.ModelConfigResponse:
        model = self.resources.repository.get(request.name, request.version)
        return pb.ModelConfigResponse(config=model.config)


class ModelStatistics(
    UnaryContext[pb.ModelStatisticsRequest, pb.ModelStatisticsResponse, InferenceResources]
):
    method = rpc_method(pb, SERVICE, "ModelStatistics")

    async def execute(self, request: pb.ModelStatisticsRequest) -> pb.ModelStatisticsResponse:
        repository = self.resources.repository
        reply = pb.ModelStatisticsResponse()
        if request.name:
            model = repository.get(request.name, request.version)
            versions = [model] if request.version else repository.versions(model.name)
        else:
            versions = [
                m for name in sorted(repository.ready_models()) for m in repository.versions(name)
            ]
        for model in versions:
            reply.model_stats.append(model.stats.message(model.name, model.version))
        return reply


class RepositoryIndex(
    UnaryContext[pb.RepositoryIndexRequest, pb.RepositoryIndexResponse, InferenceResources]
):
    method = rpc_method(pb, SERVICE, "RepositoryIndex")

    async def execute(self, request: pb.RepositoryIndexRequest) -> pb.RepositoryIndexResponse:
        if request.repository_name:
            raise NotFound(
                f"unknown repository '{request.repository_name}': this server has one "
                "repository; leave repository_name empty"
            )
        reply = pb.RepositoryIndexResponse()
        for name, version, state, reason in self.resources.repository.index():
            if request.ready and state != "READY":
                continue
            reply.models.add(name=name, version=version, state=state, reason=reason)
        return reply


class RepositoryModelLoad(
    UnaryContext[pb.RepositoryModelLoadRequest, pb.RepositoryModelLoadResponse, InferenceResources]
):
    method = rpc_method(pb, SERVICE, "RepositoryModelLoad")

    async def execute(
        self, request: pb.RepositoryModelLoadRequest
    ) -> pb.RepositoryModelLoadResponse:
        repository = self.resources.repository
        repository.check_control()
        name = request.model_name
        override: str | None = None
        files: dict[str, bytes] = {}
        for key, parameter in request.parameters.items():
            if key == "config":
                override = parameter.string_param
            elif key.startswith("file:"):
                files[key[len("file:") :]] = parameter.bytes_param
            else:
                raise InvalidArgument(
                    f"failed to load '{name}', unknown parameter '{key}' (expected 'config' "
                    "or 'file:<path>')"
                )
        await repository.load(name, config_override=override, files=files)
        return pb.RepositoryModelLoadResponse()


class RepositoryModelUnload(
    UnaryContext[
        pb.RepositoryModelUnloadRequest, pb.RepositoryModelUnloadResponse, InferenceResources
    ]
):
    method = rpc_method(pb, SERVICE, "RepositoryModelUnload")

    async def execute(
        self, request: pb.RepositoryModelUnloadRequest
    ) -> pb.RepositoryModelUnloadResponse:
        repository = self.resources.repository
        repository.check_control()
        await repository.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()
