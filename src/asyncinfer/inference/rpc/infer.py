"""The inference RPCs: ModelInfer (unary) and ModelStreamInfer (one stream, many requests).

Each is a thin adapter over the data plane: decode the message (wire/decode.py), run it on the
model's ``LoadedModel`` (``infer``, or ``stream`` for a stream, decoupled models included),
encode what comes back (wire/encode.py). Replies are bytes framed by hand; the framework sends
returned bytes as the already-serialized reply.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator

from opentelemetry.trace import Status, StatusCode

from ...context import BidiStreamContext, UnaryContext, rpc_method
from ...errors import RpcError, internal_error
from ...pb.inference import grpc_service_pb2 as pb
from ...tracing import Tracing, metadata_headers
from ..infer_types import InferRequest
from ..model import LoadedModel
from ..request_tracing import traced_request
from ..service import InferenceResources
from ..shared_memory import RequestShm
from ..wire.decode import received_request
from ..wire.encode import response_bytes, stream_error, stream_response
from ..wire.received import InferRequestCodec, ReceivedInfer
from .control import SERVICE

__all__ = ["ModelInferRpc", "ModelStreamInferRpc"]


class ModelInferRpc(UnaryContext[ReceivedInfer, pb.ModelInferResponse, InferenceResources]):
    method = rpc_method(pb, SERVICE, "ModelInfer")
    max_in_flight = 1024
    #: Large tensors stay where gRPC received them (wire/received.py).
    codec = InferRequestCodec()
    trace_calls = False  # one span per inference request, under the model's trace settings

    async def execute(self, received: ReceivedInfer) -> bytes:  # type: ignore[override]
        request = received.message
        resources = self.resources
        model = resources.repository.get(request.model_name, request.model_version)
        # The deadline is handed on as ``expires``, with no timer: grpc.aio cancels this call
        # at its deadline itself, which the data plane sees as its caller going away (marked,
        # and dropped before it runs); ``expires`` only lets it refuse to start a call whose
        # deadline passed while the loop was busy, before that cancellation arrived. The leases
        # on shared memory last until the reply is framed, on every path; the response (whose
        # arrays may view leased memory) is a temporary of one expression.
        with resources.shm.scope() as scope:
            decoded = received_request(received, scope)
            remaining = self.call.time_remaining()
            if remaining is not None:  # no timer: gRPC cancels the call; schedulers drop it
                decoded.expires = time.monotonic() + remaining
            if resources.trace_settings.active:
                return await self._traced(model, decoded)
            return response_bytes(await model.infer(decoded))

    async def _traced(self, model: LoadedModel, request: InferRequest) -> bytes:
        """One request under its span (when the model's trace settings sample it)."""
        headers = metadata_headers(self.call.metadata)
        with traced_request(self.resources.tracing, model, request, headers):
            return response_bytes(await model.infer(request))


class ModelStreamInferRpc(
    BidiStreamContext[pb.ModelInferRequest, pb.ModelStreamInferResponse, InferenceResources]
):
    """Requests are answered in order; a failed request answers with error_message, and the
    stream goes on. The stream ends after the client half-closes and the last reply is sent."""

    method = rpc_method(pb, SERVICE, "ModelStreamInfer")
    max_in_flight = 256
    codec = InferRequestCodec()
    trace_calls = False  # one span per request of the stream

    async def execute(  # type: ignore[override]
        self, requests: AsyncIterator[ReceivedInfer]
    ) -> AsyncIterator[bytes | pb.ModelStreamInferResponse]:
        repository = self.resources.repository
        headers = metadata_headers(self.call.metadata)
        async for received in requests:
            message = received.message
            try:
                model = repository.get(message.model_name, message.model_version)
                with self.resources.shm.scope() as scope:
                    # Closed before the leases return, on every path (the stream going away
                    # included): no response viewing leased memory outlives them.
                    replies_of = (
                        _replies(model, received, scope)
                        if not self.resources.trace_settings.active
                        else _traced_replies(
                            model, received, scope, self.resources.tracing, headers
                        )
                    )
                    async with contextlib.aclosing(replies_of) as replies:
                        async for reply in replies:
                            yield reply
            except RpcError as exc:
                yield stream_error(message, exc.message)
            except Exception as exc:
                yield stream_error(message, internal_error(exc, self.rpc_path()).message)


async def _replies(
    model: LoadedModel, received: ReceivedInfer, scope: RequestShm
) -> AsyncGenerator[bytes | pb.ModelStreamInferResponse, None]:
    """The framed stream items of every response to ``received``."""
    message = received.message
    request = received_request(received, scope)
    async with contextlib.aclosing(model.stream(request)) as responses:
        async for response in responses:
            yield stream_response(message, response)


async def _traced_replies(
    model: LoadedModel,
    received: ReceivedInfer,
    scope: RequestShm,
    tracing: Tracing,
    headers: dict[str, str],
) -> AsyncGenerator[bytes | pb.ModelStreamInferResponse, None]:
    """``_replies`` under the request's span (when its model's trace settings sample it)."""
    message = received.message
    request = received_request(received, scope)
    with traced_request(tracing, model, request, headers) as active:
        async with contextlib.aclosing(model.stream(request)) as responses:
            async for response in responses:
                if response.error is not None and active is not None:
                    active.span.set_status(Status(StatusCode.ERROR, response.error.message))
                yield stream_response(message, response)
