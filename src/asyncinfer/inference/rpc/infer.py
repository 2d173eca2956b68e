"""The data-plane RPCs: ModelInfer (unary) and ModelStreamInfer (one stream, many requests).

Replies are the bytes LoadedModel.infer framed by hand; the framework sends returned bytes as
the already-serialized reply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ...context import BidiStreamContext, UnaryContext, rpc_method
from ...errors import RpcError, internal_error
from ...pb.inference import grpc_service_pb2 as pb
from ..decoupled import frame, stream_error, stream_responses
from .control import SERVICE, InferenceResources

__all__ = ["ModelInfer", "ModelStreamInfer"]


class ModelInfer(UnaryContext[pb.ModelInferRequest, pb.ModelInferResponse, InferenceResources]):
    method = rpc_method(pb, SERVICE, "ModelInfer")
    max_in_flight = 1024

    async def execute(self, request: pb.ModelInferRequest) -> bytes:  # type: ignore[override]
        model = self.resources.repository.get(request.model_name, request.model_version)
        return await model.infer(request, self.resources.shm)


class ModelStreamInfer(
    BidiStreamContext[pb.ModelInferRequest, pb.ModelStreamInferResponse, InferenceResources]
):
    """Requests are answered in order; a failed request answers with error_message, and the
    stream goes on. The stream ends after the client half-closes and the last reply is sent."""

    method = rpc_method(pb, SERVICE, "ModelStreamInfer")
    max_in_flight = 256

    async def execute(  # type: ignore[override]
        self, requests: AsyncIterator[pb.ModelInferRequest]
    ) -> AsyncIterator[bytes | pb.ModelStreamInferResponse]:
        repository = self.resources.repository
        async for request in requests:
            try:
                model = repository.get(request.model_name, request.model_version)
                if model.decoupled:
                    async for response in stream_responses(model, request, self.resources.shm):
                        yield response
                    continue
                body = await model.infer(request, self.resources.shm)
            except RpcError as exc:
                yield stream_error(request, exc.message)
            except Exception as exc:
                yield stream_error(request, internal_error(exc, self.rpc_path()).message)
            else:
                yield frame(body)
