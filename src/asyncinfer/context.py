"""Context base classes: the code of one RPC, one base class per gRPC call shape.

A user subclasses one of the four shapes per RPC, names the RPC by its protobuf method
descriptor (so the name and the message types have one source) and writes ``execute``::

    class Ping(UnaryContext[PingRequest, PingReply, PingResources]):
        method = rpc_method(ping_pb2, "Ping", "Ping")
        max_in_flight = 256

        async def execute(self, request: PingRequest) -> PingReply:
            return PingReply(payload=request.payload)

``codec`` says how the messages are encoded: protobuf by default; ``codecs.FLATBUFFERS`` (a
dict of numpy arrays in and out) or ``codecs.RAW`` (bytes) for a method whose messages hold one
``bytes`` field; see :mod:`asyncinfer.codecs`.

A Context object lives for one call: ``self.resources`` is what the service shares and
``self.call`` is the per-call information (peer, deadline, metadata). Class definitions are
checked when they are created, so a wrong shape, a synchronous ``execute``, a missing method
descriptor or a codec that cannot carry the RPC's messages fail at import, not at the first
call.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import AsyncIterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from opentelemetry.trace import INVALID_SPAN, Span

from .codecs import PROTOBUF, BoundCodec, Codec, bind_method
from .errors import ConfigError
from .resources import Resources

if TYPE_CHECKING:
    from .tracing import Tracing

__all__ = [
    "BidiStreamContext",
    "CallInfo",
    "ClientStreamContext",
    "Context",
    "ServerStreamContext",
    "UnaryContext",
    "rpc_method",
]

ReqT = TypeVar("ReqT")  # a protobuf message, or what the Context's codec decodes to
RepT = TypeVar("RepT")
ResT = TypeVar("ResT", bound=Resources)


def rpc_method(pb2: ModuleType, service: str, method: str) -> MethodDescriptor:
    """The descriptor of ``service.method`` in a generated ``*_pb2`` module."""
    try:
        return pb2.DESCRIPTOR.services_by_name[service].methods_by_name[method]  # type: ignore[no-any-return]
    except KeyError:
        services = sorted(pb2.DESCRIPTOR.services_by_name)
        raise ConfigError(
            f"{pb2.__name__} has no RPC {service}.{method}; its services are {services}"
        ) from None


class CallInfo:
    """What a Context may know about its call: peer, deadline, metadata, its trace span;
    nothing to misuse."""

    __slots__ = ("_grpc", "_span", "tracing")

    def __init__(
        self,
        grpc_context: grpc.aio.ServicerContext[Any, Any],
        tracing: Tracing | None = None,
        span: Span | None = None,
    ) -> None:
        self._grpc = grpc_context
        #: The server's tracing (its settings and tracer); None outside a server.
        self.tracing = tracing
        self._span = span

    @property
    def span(self) -> Span:
        """This call's trace span, to add attributes and events to; when the call is not
        traced, OpenTelemetry's non-recording span (whose methods do nothing)."""
        return self._span if self._span is not None else INVALID_SPAN

    @property
    def peer(self) -> str:
        return self._grpc.peer()

    def time_remaining(self) -> float | None:
        """Seconds until the caller's deadline, or None when it set none."""
        remaining = self._grpc.time_remaining()
        return None if remaining is None or math.isinf(remaining) else float(remaining)

    @property
    def metadata(self) -> Sequence[tuple[str, str | bytes]]:
        return tuple(self._grpc.invocation_metadata() or ())

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, str | bytes]]) -> None:
        self._grpc.set_trailing_metadata(tuple(metadata))

    @property
    def grpc_context(self) -> grpc.aio.ServicerContext[Any, Any]:
        """The underlying grpc.aio context, for what this class does not cover."""
        return self._grpc


class Context(Generic[ReqT, RepT, ResT]):
    """The code of one RPC. Subclass one of the four shapes below, not this class."""

    #: The RPC this Context implements; required on every concrete subclass.
    method: ClassVar[MethodDescriptor]
    #: Admission: at most this many calls run at once; None means no limit.
    max_in_flight: ClassVar[int | None] = None
    #: How long a call may wait for admission (its deadline still applies); None: deadline only.
    queue_timeout: ClassVar[float | None] = 30.0
    #: How requests and replies are encoded (asyncinfer.codecs); protobuf unless set.
    codec: ClassVar[Codec] = PROTOBUF
    #: Whether the server makes a span for each call it samples (``self.call.span``); a
    #: Context that traces its own units of work (the inference RPCs: one span per request)
    #: sets False.
    trace_calls: ClassVar[bool] = True

    client_streaming: ClassVar[bool]
    server_streaming: ClassVar[bool]
    request_type: ClassVar[type[Message]]
    reply_type: ClassVar[type[Message]]
    request_codec: ClassVar[BoundCodec]
    reply_codec: ClassVar[BoundCodec]

    __slots__ = ("call", "resources")

    def __init__(self, resources: ResT, call: CallInfo) -> None:
        self.resources = resources
        self.call = call

    def __init_subclass__(
        cls,
        *,
        client_streaming: bool | None = None,
        server_streaming: bool | None = None,
        abstract: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if client_streaming is not None and server_streaming is not None:
            cls.client_streaming = client_streaming  # one of the four shape bases
            cls.server_streaming = server_streaming
            return
        if not hasattr(cls, "client_streaming"):
            raise ConfigError(
                f"{cls.__qualname__}: subclass UnaryContext, ServerStreamContext, "
                "ClientStreamContext or BidiStreamContext, not Context itself"
            )
        if abstract:
            return
        _check_concrete(cls)

    @classmethod
    def rpc_path(cls) -> str:
        """The gRPC path of the RPC, ``/package.Service/Method``."""
        return f"/{cls.method.containing_service.full_name}/{cls.method.name}"


def _check_concrete(cls: type[Context[Any, Any, Any]]) -> None:
    name = cls.__qualname__
    method = getattr(cls, "method", None)
    if not isinstance(method, MethodDescriptor):
        raise ConfigError(
            f"{name}: set the class attribute `method` to the RPC's method descriptor, e.g. "
            "`method = rpc_method(my_pb2, 'Service', 'Method')` (or pass abstract=True for a "
            f"base class); got {method!r}"
        )
    shape = (method.client_streaming, method.server_streaming)
    if shape != (cls.client_streaming, cls.server_streaming):
        raise ConfigError(
            f"{name}: {method.full_name} is a {_SHAPE_NAMES[shape]} RPC; "
            f"subclass {_SHAPE_BASES[shape]} instead of "
            f"{_SHAPE_BASES[(cls.client_streaming, cls.server_streaming)]}"
        )
    execute = getattr(cls, "execute", None)
    if execute in _BASE_EXECUTES:
        raise ConfigError(f"{name}: define `async def execute(...)` for {method.full_name}")
    if cls.server_streaming:
        if not inspect.isasyncgenfunction(execute):
            raise ConfigError(
                f"{name}.execute must be an async generator (`async def` that yields replies) "
                f"for the {_SHAPE_NAMES[shape]} RPC {method.full_name}"
            )
    elif not inspect.iscoroutinefunction(execute):
        raise ConfigError(
            f"{name}.execute must be `async def` returning one reply for the "
            f"{_SHAPE_NAMES[shape]} RPC {method.full_name}"
        )
    _check_limits(name, cls.max_in_flight, cls.queue_timeout)
    cls.request_type = message_factory.GetMessageClass(method.input_type)
    cls.reply_type = message_factory.GetMessageClass(method.output_type)
    try:
        cls.request_codec, cls.reply_codec = bind_method(cls.codec, method)
    except ConfigError as exc:
        raise ConfigError(f"{name}.codec: {exc}") from None


def _check_limits(name: str, max_in_flight: object, queue_timeout: object) -> None:
    if max_in_flight is not None and (
        isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1
    ):
        raise ConfigError(
            f"{name}.max_in_flight must be a positive int or None, not {max_in_flight!r}"
        )
    if queue_timeout is not None and (
        not isinstance(queue_timeout, int | float) or not queue_timeout >= 0
    ):
        raise ConfigError(
            f"{name}.queue_timeout must be seconds >= 0 or None, not {queue_timeout!r}"
        )


_SHAPE_NAMES = {
    (False, False): "unary",
    (False, True): "server-streaming",
    (True, False): "client-streaming",
    (True, True): "bidirectional-streaming",
}
_SHAPE_BASES = {
    (False, False): "UnaryContext",
    (False, True): "ServerStreamContext",
    (True, False): "ClientStreamContext",
    (True, True): "BidiStreamContext",
}


class UnaryContext(Context[ReqT, RepT, ResT], client_streaming=False, server_streaming=False):
    """One request, one reply: ``async def execute(self, request) -> reply``."""

    __slots__ = ()

    async def execute(self, request: ReqT) -> RepT:
        raise NotImplementedError


class ServerStreamContext(Context[ReqT, RepT, ResT], client_streaming=False, server_streaming=True):
    """One request, a stream of replies: ``async def execute(self, request)`` yields replies."""

    __slots__ = ()

    async def execute(self, request: ReqT) -> AsyncIterator[RepT]:
        raise NotImplementedError
        yield  # pragma: no cover - makes this an async generator


class ClientStreamContext(Context[ReqT, RepT, ResT], client_streaming=True, server_streaming=False):
    """A stream of requests, one reply: ``async def execute(self, requests) -> reply``."""

    __slots__ = ()

    async def execute(self, requests: AsyncIterator[ReqT]) -> RepT:
        raise NotImplementedError


class BidiStreamContext(Context[ReqT, RepT, ResT], client_streaming=True, server_streaming=True):
    """Streams both ways: ``async def execute(self, requests)`` yields replies."""

    __slots__ = ()

    async def execute(self, requests: AsyncIterator[ReqT]) -> AsyncIterator[RepT]:
        raise NotImplementedError
        yield  # pragma: no cover - makes this an async generator


_BASE_EXECUTES = frozenset(
    base.execute
    for base in (UnaryContext, ServerStreamContext, ClientStreamContext, BidiStreamContext)
)
