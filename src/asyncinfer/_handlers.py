"""Turns a Context class into a grpc.aio method handler: parse, admit, execute, map errors.

Requests arrive as raw bytes and are parsed here so that bytes that do not parse become
INVALID_ARGUMENT naming the RPC (grpc would answer INTERNAL). Replies may be messages or bytes
that the Context framed itself; both go out unchanged in meaning.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from time import perf_counter
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError, Message

from .admission import Admission
from .context import CallInfo, Context
from .errors import InvalidArgument, RpcError, bounded_message, internal_error
from .resources import Resources

__all__ = ["METHOD_HANDLERS", "make_handler", "serialize_reply"]

AnyContext = Context[Any, Any, Any]
GrpcContext = grpc.aio.ServicerContext[Any, Any]


def serialize_reply(reply: Message | bytes) -> bytes:
    """Serialize a reply; a Context may return bytes it framed itself (large tensors)."""
    return reply if type(reply) is bytes else reply.SerializeToString()  # type: ignore[union-attr]


def make_handler(
    cls: type[AnyContext], resources: Resources, admission: Admission
) -> grpc.RpcMethodHandler[Any, Any]:
    """The grpc method handler that runs ``cls`` for each call of its RPC."""
    shape = (cls.client_streaming, cls.server_streaming)
    build = _streaming_reply if cls.server_streaming else _single_reply
    behaviour = build(cls, resources, admission)
    factory = METHOD_HANDLERS[shape]
    return factory(behaviour, request_deserializer=None, response_serializer=serialize_reply)


def _parser(cls: type[AnyContext]) -> Callable[[bytes], Message]:
    request_type = cls.request_type
    path = cls.rpc_path()

    def parse(raw: bytes) -> Message:
        try:
            return request_type.FromString(raw)
        except DecodeError as exc:
            raise InvalidArgument(
                f"{path}: request bytes do not parse as {request_type.DESCRIPTOR.full_name} ({exc})"
            ) from None

    return parse


async def _fail(
    call: GrpcContext, cls: type[AnyContext], admission: Admission, exc: Exception
) -> NoReturn:
    """Answer the call with the status ``exc`` maps to."""
    admission.failed += 1
    if isinstance(exc, grpc.aio.AbortError):
        raise exc  # the Context aborted the call itself; its status is already set
    error = exc if isinstance(exc, RpcError) else internal_error(exc, cls.rpc_path())
    await call.abort(error.code, bounded_message(error.message))
    raise AssertionError("grpc's abort() returned")  # it raises; this line is never reached


def _stream_requests(
    raw_requests: AsyncIterator[bytes], parse: Callable[[bytes], Message]
) -> AsyncIterator[Message]:
    async def requests() -> AsyncIterator[Message]:
        async for raw in raw_requests:
            yield parse(raw)

    return requests()


async def _admit(
    raw: Any,
    call: GrpcContext,
    cls: type[AnyContext],
    admission: Admission,
    parse: Callable[[bytes], Message],
) -> Any:
    """The parsed request (or stream of requests), once the call holds an admission slot.

    Bad bytes and a full queue answer the call here; the slot is taken only on success, and
    the caller must release it on every path from then on.
    """
    try:
        request = _stream_requests(raw, parse) if cls.client_streaming else parse(raw)
    except Exception as exc:
        await _fail(call, cls, admission, exc)
    if not admission.try_acquire():
        await _queue(call, cls, admission)
    return request


async def _queue(call: GrpcContext, cls: type[AnyContext], admission: Admission) -> None:
    """Wait for an admission slot within the call's deadline; a full queue answers the call."""
    try:
        await admission.acquire(call.time_remaining())
    except asyncio.CancelledError:
        admission.cancelled += 1
        raise
    except Exception as exc:
        await _fail(call, cls, admission, exc)


def _single_reply(
    cls: type[AnyContext], resources: Resources, admission: Admission
) -> Callable[[Any, GrpcContext], Awaitable[Any]]:
    parse = _parser(cls)
    unary_request = not cls.client_streaming

    async def handle(raw: Any, call: GrpcContext) -> Any:
        arrived = perf_counter()
        # _admit's work inlined: this is the hot path of every unary call.
        try:
            request = parse(raw) if unary_request else _stream_requests(raw, parse)
        except Exception as exc:
            await _fail(call, cls, admission, exc)
        if not admission.try_acquire():
            await _queue(call, cls, admission)
        admitted = perf_counter()
        # From here on the slot is ours: every path out, cancellation included, releases it.
        try:
            context: Any = cls(resources, CallInfo(call))
            reply = await context.execute(request)
        except asyncio.CancelledError:
            admission.cancelled += 1
            raise
        except Exception as exc:
            await _fail(call, cls, admission, exc)
        else:
            admission.completed += 1
            return reply
        finally:
            admission.release()
            done = perf_counter()
            admission.times.observe(done - arrived, done - admitted)

    return handle


def _streaming_reply(
    cls: type[AnyContext], resources: Resources, admission: Admission
) -> Callable[[Any, GrpcContext], AsyncIterator[Any]]:
    parse = _parser(cls)

    async def handle(raw: Any, call: GrpcContext) -> AsyncIterator[Any]:
        arrived = perf_counter()
        request = await _admit(raw, call, cls, admission, parse)
        admitted = perf_counter()
        try:
            context: Any = cls(resources, CallInfo(call))
            replies = context.execute(request)
            try:
                async for reply in replies:
                    yield reply
            finally:
                # Close the Context's generator here, under our accounting, not at GC time.
                await replies.aclose()
        except (asyncio.CancelledError, GeneratorExit):
            admission.cancelled += 1
            raise
        except Exception as exc:
            await _fail(call, cls, admission, exc)
        else:
            admission.completed += 1
        finally:
            admission.release()
            done = perf_counter()
            admission.times.observe(done - arrived, done - admitted)

    return handle


#: grpc's method-handler factory for each (client streaming, server streaming) shape.
METHOD_HANDLERS: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler[Any, Any]]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}
