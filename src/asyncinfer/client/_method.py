"""How a client invokes one RPC of any shape, and how received statuses become our errors.

Requests are encoded and replies decoded by the method's codec (protobuf unless the Context
or the caller names another), so clients call FlatBuffers and raw methods like any other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from ..codecs import PROTOBUF, BoundCodec, Codec, bind_method
from ..context import Context
from ..errors import ConfigError, RpcError, from_status
from .routing import Metadata, routing_metadata

__all__ = ["Method", "Request", "to_error"]

#: One message (what the codec encodes), or a sequence of them for client-streaming RPCs.
Request = Any


def to_error(exc: grpc.RpcError) -> RpcError:
    """The asyncinfer error for a status received from grpc (sync or aio)."""
    code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
    details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
    return from_status(code, details or "")


@dataclasses.dataclass(frozen=True)
class Method:
    """An RPC as a client sees it: path, codecs of its messages and call shape."""

    path: str
    request_codec: BoundCodec
    reply_codec: BoundCodec
    client_streaming: bool
    server_streaming: bool

    @classmethod
    def of(
        cls, rpc: MethodDescriptor | type[Context[Any, Any, Any]], *, codec: Codec | None = None
    ) -> Method:
        """From a method descriptor (protobuf unless ``codec`` is given) or a Context class
        (with the Context's codec)."""
        if isinstance(rpc, MethodDescriptor):
            descriptor = rpc
            request_codec, reply_codec = bind_method(codec or PROTOBUF, rpc)
        elif codec is None:
            descriptor, request_codec, reply_codec = rpc.method, rpc.request_codec, rpc.reply_codec
        else:
            raise ConfigError(f"{rpc.__qualname__} names its codec; Method.of takes none for it")
        return cls(
            path=f"/{descriptor.containing_service.full_name}/{descriptor.name}",
            request_codec=request_codec,
            reply_codec=reply_codec,
            client_streaming=descriptor.client_streaming,
            server_streaming=descriptor.server_streaming,
        )

    def with_codec(self, codec: Codec) -> Method:
        """The same RPC with its messages encoded by ``codec`` (ConfigError if it cannot)."""
        request, reply = self.request_codec.message, self.reply_codec.message
        try:
            return dataclasses.replace(
                self, request_codec=codec.bind(request), reply_codec=codec.bind(reply)
            )
        except ConfigError as exc:
            raise ConfigError(f"{self.path}: {exc}") from None

    @property
    def request_type(self) -> type[Message]:
        """The request's protobuf message class (the carrier, for a non-protobuf codec)."""
        return message_factory.GetMessageClass(self.request_codec.message)

    @property
    def reply_type(self) -> type[Message]:
        return message_factory.GetMessageClass(self.reply_codec.message)

    def _multicallable(self, channel: Any) -> Any:
        kind = {
            (False, False): channel.unary_unary,
            (False, True): channel.unary_stream,
            (True, False): channel.stream_unary,
            (True, True): channel.stream_stream,
        }[(self.client_streaming, self.server_streaming)]
        # Requests are encoded by _requests, outside grpc, so that a value the codec cannot
        # encode raises its own error here instead of grpc's "Exception serializing request!".
        return kind(self.path, response_deserializer=self.reply_codec.decode)

    def _requests(self, request: Request) -> Any:
        encode = self.request_codec.encode
        if self.client_streaming:
            items = request if isinstance(request, list | tuple) else [request]
            return iter([encode(item) for item in items])
        return encode(request)

    def aio_invoker(self, channel: grpc.aio.Channel) -> Callable[..., Awaitable[Any]]:
        """``await invoke(request, timeout, metadata=None)``: the reply, or a list of replies
        when streaming; ``metadata`` (trace context, say) is sent along."""
        call = self._multicallable(channel)
        streaming = self.server_streaming

        async def invoke(
            request: Request,
            timeout: float | None,  # noqa: ASYNC109 (a gRPC deadline)
            metadata: Metadata | None = None,
        ) -> Any:
            routing = routing_metadata(request)
            if metadata is not None:
                routing = (*routing, *metadata) if routing is not None else tuple(metadata)
            try:
                if streaming:
                    replies = call(self._requests(request), timeout=timeout, metadata=routing)
                    return [reply async for reply in replies]
                return await call(self._requests(request), timeout=timeout, metadata=routing)
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
