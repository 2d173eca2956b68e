"""The control RPCs of the inference service: health, metadata, config, statistics, and the
repository's index, load and unload; each a Context over the service's InferenceResources.

A Context is named after its RPC with ``Rpc`` appended, so that ``ModelConfigRpc`` (the
Context) never shadows ``ModelConfig`` (the protobuf message).
"""

from __future__ import annotations

from ...context import UnaryContext, rpc_method
from ...pb.inference import grpc_service_pb2 as pb
from ..control_calls import (
    load_model,
    model_metadata,
    repository_index,
    statistics_models,
    unload_model,
)
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
        metadata = model_metadata(self.resources, request.name, request.version)
        reply = pb.ModelMetadataResponse(
            name=metadata.name, versions=metadata.versions, platform=metadata.platform
        )
        for tensors, target in ((metadata.inputs, reply.inputs), (metadata.outputs, reply.outputs)):
            for tensor in tensors:
                target.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
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
        reply = pb.ModelStatisticsResponse()
        for model in statistics_models(self.resources, request.name, request.version):
            reply.model_stats.append(model.stats.message(model.name, model.version))
        return reply


class RepositoryIndexRpc(
    UnaryContext[pb.RepositoryIndexRequest, pb.RepositoryIndexResponse, InferenceResources]
):
    method = rpc_method(pb, SERVICE, "RepositoryIndex")

    async def execute(self, request: pb.RepositoryIndexRequest) -> pb.RepositoryIndexResponse:
        reply = pb.RepositoryIndexResponse()
        for entry in repository_index(self.resources, request.repository_name, ready=request.ready):
            reply.models.add(
                name=entry.name, version=entry.version, state=entry.state, reason=entry.reason
            )
        return reply


class RepositoryModelLoadRpc(
    UnaryContext[pb.RepositoryModelLoadRequest, pb.RepositoryModelLoadResponse, InferenceResources]
):
    method = rpc_method(pb, SERVICE, "RepositoryModelLoad")

    async def execute(
        self, request: pb.RepositoryModelLoadRequest
    ) -> pb.RepositoryModelLoadResponse:
        # ModelRepositoryParameter's oneof, as plain values (None when unset).
        parameters = {
            key: getattr(value, choice)
            if (choice := value.WhichOneof("parameter_choice"))
            else None
            for key, value in request.parameters.items()
        }
        await load_model(self.resources, request.model_name, parameters)
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
        await unload_model(self.resources, request.model_name)
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
