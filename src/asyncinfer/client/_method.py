"""How a client invokes one RPC of any shape, and how received statuses become our errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from ..context import Context
from ..errors import RpcError, from_status
from .routing import routing_metadata

__all__ = ["Method", "Request", "to_error"]

#: One message, or a sequence of messages for client-streaming RPCs.
Request = Message | Sequence[Message]


def to_error(exc: grpc.RpcError) -> RpcError:
    """The asyncinfer error for a status received from grpc (sync or aio)."""
    code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
    details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
    return from_status(code, details or "")


@dataclasses.dataclass(frozen=True)
class Method:
    """An RPC as a client sees it: path, message types and call shape."""

    path: str
    request_type: type[Message]
    reply_type: type[Message]
    client_streaming: bool
    server_streaming: bool

    @classmethod
    def of(cls, rpc: MethodDescriptor | type[Context[Any, Any, Any]]) -> Method:
        """From a method descriptor or a Context class that declares one."""
        descriptor = rpc if isinstance(rpc, MethodDescriptor) else rpc.method
        return cls(
            path=f"/{descriptor.containing_service.full_name}/{descriptor.name}",
            request_type=message_factory.GetMessageClass(descriptor.input_type),
            reply_type=message_factory.GetMessageClass(descriptor.output_type),
            client_streaming=descriptor.client_streaming,
            server_streaming=descriptor.server_streaming,
        )

    def _multicallable(self, channel: Any) -> Any:
        kind = {
            (False, False): channel.unary_unary,
            (False, True): channel.unary_stream,
            (True, False): channel.stream_unary,
            (True, True): channel.stream_stream,
        }[(self.client_streaming, self.server_streaming)]
        return kind(
            self.path,
            request_serializer=self.request_type.SerializeToString,
            response_deserializer=self.reply_type.FromString,
        )

    def _requests(self, request: Request) -> Any:
        if self.client_streaming:
            return iter(request if isinstance(request, Sequence) else [request])
        return request

    def aio_invoker(
        self, channel: grpc.aio.Channel
    ) -> Callable[[Request, float | None], Awaitable[Any]]:
        """``await invoke(request, timeout)``: the reply, or a list of replies when streaming."""
        call = self._multicallable(channel)
        streaming = self.server_streaming

        async def invoke(request: Request, timeout: float | None) -> Any:  # noqa: ASYNC109 (a gRPC deadline)
            try:
                if streaming:
                    return [reply async for reply in call(self._requests(request), timeout=timeout)]
                return await call(
                    self._requests(request), timeout=timeout, metadata=routing_metadata(request)
                )
            except grpc.aio.AioRpcError as exc:
                raise to_error(exc) from None

        return invoke

    def sync_invoker(self, channel: grpc.Channel) -> Callable[[Request, float | None], Any]:
        """``invoke(request, timeout)`` on a blocking channel; same results as aio_invoker."""
        call = self._multicallable(channel)
        streaming = self.server_streaming

        def invoke(request: Request, timeout: float | None) -> Any:
            try:
                if streaming:
                    return list(call(self._requests(request), timeout=timeout))
                return call(
                    self._requests(request), timeout=timeout, metadata=routing_metadata(request)
                )
            except grpc.RpcError as exc:
                raise to_error(exc) from None

        return invoke
