"""The control RPCs of the inference service: health, metadata, config, statistics, and the
repository's index, load and unload; each a Context over the service's InferenceResources.

A Context is named after its RPC with ``Rpc`` appended, so that ``ModelConfigRpc`` (the
Context) never shadows ``ModelConfig`` (the protobuf message).
"""

from __future__ import annotations

from ...context import UnaryContext, rpc_method
from ...errors import InvalidArgument, NotFound
from ...pb.inference import grpc_service_pb2 as pb
from ..service import SERVER_NAME, InferenceResources

__all__ = [
    "CONTROL_CONTEXTS",
    "SERVICE",
    "ModelConfigRpc",
    "ModelMetadataRpc",
    "ModelReadyRpc",
    "ModelStatisticsRpc",
    "RepositoryIndexRpc",
    "RepositoryModelLoadRpc",
    "RepositoryModelUnloadRpc",
    "ServerLiveRpc",
    "ServerMetadataRpc",
    "ServerReadyRpc",
]

SERVICE = "GRPCInferenceService"


class ServerLiveRpc(UnaryContext[pb.ServerLiveRequest, pb.ServerLiveResponse, InferenceResources]):
    method = rpc_method(pb, SERVICE, "ServerLive")

    async def execute(self, request: pb.ServerLiveRequest) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)


class ServerReadyRpc(
    UnaryContext[pb.ServerReadyRequest, pb.ServerReadyResponse, InferenceResources]
):
    method = rpc_method(pb, SERVICE, "ServerReady")

    async def execute(self, request: pb.ServerReadyRequest) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.resources.ready())


class ModelReadyRpc(UnaryContext[pb.ModelReadyRequest, pb.ModelReadyResponse, InferenceResources]):
    method = rpc_method(pb, SERVICE, "ModelReady")

    async def execute(self, request: pb.ModelReadyRequest) -> pb.ModelReadyResponse:
        # Unknown or unloaded: ready=false with status OK, as Triton's clients expect.
        ready = self.resources.repository.is_ready(request.name, request.version)
        return pb.ModelReadyResponse(ready=ready)


class ServerMetadataRpc(
    UnaryContext[pb.ServerMetadataRequest, pb.ServerMetadataResponse, InferenceResources]
):
    method = rpc_method(pb, SERVICE, "ServerMetadata")

    async def execute(self, request: pb.ServerMetadataRequest) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=self.resources.version, extensions=self.resources.extensions()
        )


class ModelMetadataRpc(
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


class ModelConfigRpc(
    UnaryContext[pb.ModelConfigRequest, pb.ModelConfigResponse, InferenceResources]
):
    method = rpc_method(pb, SERVICE, "ModelConfig")

    async def execute(self, request: pb.ModelConfigRequest) -> pb.ModelConfigResponse:
        model = self.resources.repository.get(request.name, request.version)
        return pb.ModelConfigResponse(config=model.config)


class ModelStatisticsRpc(
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


class RepositoryIndexRpc(
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


class RepositoryModelLoadRpc(
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


class RepositoryModelUnloadRpc(
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


CONTROL_CONTEXTS = (
    ServerLiveRpc,
    ServerReadyRpc,
    ModelReadyRpc,
    ServerMetadataRpc,
    ModelMetadataRpc,
    ModelConfigRpc,
    ModelStatisticsRpc,
    RepositoryIndexRpc,
    RepositoryModelLoadRpc,
    RepositoryModelUnloadRpc,
)
