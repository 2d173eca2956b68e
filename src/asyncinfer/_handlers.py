"""Turns a Context class into a grpc.aio method handler: decode, admit, execute, encode, map
errors.

Requests arrive as raw bytes and are decoded here, by the Context's codec, once per message on
the loop thread, so that bytes that do not decode become INVALID_ARGUMENT naming the RPC (grpc
would answer INTERNAL). Replies are encoded here too, inside the call's error handling: a
reply the codec cannot encode is an internal error with an id, not a bare grpc failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from time import perf_counter
from typing import Any, NoReturn

import grpc

from .admission import Admission
from .context import CallInfo, Context
from .errors import InvalidArgument, RpcError, internal_error
from .resources import Resources

__all__ = ["make_handler"]

AnyContext = Context[Any, Any, Any]
GrpcContext = grpc.aio.ServicerContext[Any, Any]


def make_handler(
    cls: type[AnyContext], resources: Resources, admission: Admission
) -> grpc.RpcMethodHandler[Any, Any]:
    """The grpc method handler that runs ``cls`` for each call of its RPC."""
    shape = (cls.client_streaming, cls.server_streaming)
    build = _streaming_reply if cls.server_streaming else _single_reply
    behaviour = build(cls, resources, admission)
    factory = _FACTORIES[shape]
    return factory(behaviour, request_deserializer=None, response_serializer=None)


def _parser(cls: type[AnyContext]) -> Callable[[bytes], Any]:
    decode = cls.request_codec.decode
    path = cls.rpc_path()

    def parse(raw: bytes) -> Any:
        try:
            return decode(raw)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{path}: bad request: {exc.message}") from None

    return parse


async def _fail(
    call: GrpcContext, cls: type[AnyContext], admission: Admission, exc: Exception
) -> NoReturn:
    """Answer the call with the status ``exc`` maps to."""
    admission.failed += 1
    if isinstance(exc, grpc.aio.AbortError):
        raise exc  # the Context aborted the call itself; its status is already set
    error = exc if isinstance(exc, RpcError) else internal_error(exc, cls.rpc_path())
    await call.abort(error.code, error.message)
    raise AssertionError("grpc's abort() returned")  # it raises; this line is never reached


def _stream_requests(
    raw_requests: AsyncIterator[bytes], parse: Callable[[bytes], Any]
) -> AsyncIterator[Any]:
    async def requests() -> AsyncIterator[Any]:
        async for raw in raw_requests:
            yield parse(raw)

    return requests()


async def _admit(
    raw: Any,
    call: GrpcContext,
    cls: type[AnyContext],
    admission: Admission,
    parse: Callable[[bytes], Any],
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
    encode = cls.reply_codec.encode
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
            reply = encode(await context.execute(request))
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
    encode = cls.reply_codec.encode

    async def handle(raw: Any, call: GrpcContext) -> AsyncIterator[Any]:
        arrived = perf_counter()
        request = await _admit(raw, call, cls, admission, parse)
        admitted = perf_counter()
        try:
            context: Any = cls(resources, CallInfo(call))
            replies = context.execute(request)
            try:
                async for reply in replies:
                    yield encode(reply)
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


_FACTORIES: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler[Any, Any]]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}
