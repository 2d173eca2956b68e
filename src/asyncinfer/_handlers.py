"""Turns a Context class into a grpc.aio method handler: decode, admit, execute, encode, map
errors.

Requests arrive as raw bytes and are decoded here, by the Context's codec, once per message on
the loop thread, so that bytes that do not decode become INVALID_ARGUMENT naming the RPC (grpc
would answer INTERNAL). Replies are encoded here too, inside the call's error handling: a
reply the codec cannot encode is an internal error with an id, not a bare grpc failure.

Admission: a unary-request call holds its RPC's slot for the whole call; a client stream holds
one per request, only while the Context works on it, so idle streams hold none. Every streaming
call counts against the server's stream bounds (in total and per connection), and every unary
reply's bytes count against the unsent-reply bounds until gRPC has sent it, so a client that
never reads its responses cannot grow the server without bound (both RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from time import perf_counter
from typing import Any, NoReturn

import grpc

from .admission import Admission, ConnectionBudget, ServerLimits
from .context import CallInfo, Context
from .errors import InvalidArgument, RpcError, bounded_message, internal_error
from .resources import Resources
from .tracing import ActiveSpan, Tracing, metadata_headers

__all__ = ["METHOD_HANDLERS", "make_handler"]

AnyContext = Context[Any, Any, Any]
GrpcContext = grpc.aio.ServicerContext[Any, Any]


def make_handler(
    cls: type[AnyContext],
    resources: Resources,
    admission: Admission,
    limits: ServerLimits | None = None,
    tracing: Tracing | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """The grpc method handler that runs ``cls`` for each call of its RPC.

    ``limits`` bound what calls of every RPC hold together: open streams, and unary replies not
    yet sent; None leaves both unbounded. ``tracing``: the server's, whose settings decide which
    calls get a span (None: no spans).
    """
    shape = (cls.client_streaming, cls.server_streaming)
    build = _streaming_reply if cls.server_streaming else _single_reply
    behaviour = build(
        cls, resources, admission, limits or ServerLimits.unbounded(), tracing or Tracing()
    )
    factory = METHOD_HANDLERS[shape]
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
    if isinstance(exc, grpc.aio.AbortError):
        admission.failed += 1
        raise exc  # the Context aborted the call itself; its status is already set
    if call.done():
        # The call already ended (its deadline passed, its client went): no status can be
        # sent any more, and trying makes grpc log an error for each such call.
        admission.cancelled += 1
        raise asyncio.CancelledError
    admission.failed += 1
    error = exc if isinstance(exc, RpcError) else internal_error(exc, cls.rpc_path())
    await call.abort(error.code, bounded_message(error.message))
    raise AssertionError("grpc's abort() returned")  # it raises; this line is never reached


def _admitted_requests(
    raw_requests: AsyncIterator[bytes],
    parse: Callable[[bytes], Any],
    call: GrpcContext,
    admission: Admission,
) -> AsyncIterator[Any]:
    """A client stream's requests; each holds an admission slot from when the Context takes it
    until the Context asks for the next one (or the stream ends). An idle stream, waiting for
    its client's next request, holds none."""

    async def requests() -> AsyncIterator[Any]:
        async for raw in raw_requests:
            request = parse(raw)
            if not admission.try_acquire():
                await admission.acquire(call.time_remaining())
            try:
                yield request
            finally:
                admission.release()

    return requests()


async def _queue(call: GrpcContext, cls: type[AnyContext], admission: Admission) -> None:
    """Wait for an admission slot within the call's deadline; a full queue answers the call."""
    try:
        await admission.acquire(call.time_remaining())
    except asyncio.CancelledError:
        admission.cancelled += 1
        raise
    except Exception as exc:
        await _fail(call, cls, admission, exc)


async def _open_stream(
    call: GrpcContext, cls: type[AnyContext], admission: Admission, streams: ConnectionBudget
) -> str:
    """Count a streaming call against the stream bounds; returns its connection."""
    peer = call.peer()
    try:
        streams.take(peer, 1, cls.rpc_path())
    except Exception as exc:
        await _fail(call, cls, admission, exc)
    return peer


def _hold_reply(
    call: GrpcContext,
    reply: bytes,
    budget: ConnectionBudget,
    where: str,
    loop: asyncio.AbstractEventLoop | None,
) -> None:
    """Count a unary reply's encoded bytes until gRPC has sent it (or the call ended without).

    They are given back when the call's task ends: grpc.aio runs the handler in that task and
    sends the reply (and the status) before it ends. Not ``call.add_done_callback``: grpc.aio
    keeps that callback, bound to the context, in the call's state, which the context holds, a
    reference cycle that kept every finished call (its core call and buffers too) alive until
    the next garbage collection, and made those collections several times as frequent.
    ``loop``: the server's, when known (finding the running loop costs a getpid() call).
    """
    size = len(reply)
    peer = call.peer()
    budget.take(peer, size, where)
    task = asyncio.current_task(loop)
    if task is None:  # not run by grpc.aio (a direct call): the call's own callback
        call.add_done_callback(lambda _call: budget.give(peer, size))  # type: ignore[arg-type]
    else:
        task.add_done_callback(partial(_give_back, budget, peer, size))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # built outside a loop: each call looks its loop up
        return None


def _give_back(budget: ConnectionBudget, peer: str, size: int, _task: object) -> None:
    budget.give(peer, size)


def _call_span(
    tracing: Tracing, cls: type[AnyContext], call: GrpcContext, arrived: float
) -> ActiveSpan | None:
    """The call's span when the server's trace settings sample it (dated from its arrival)."""
    service, method = cls.method.containing_service.full_name, cls.method.name
    return tracing.start_call(
        f"{service}/{method}",
        metadata_headers(call.invocation_metadata() or ()),
        start_ns=int(arrived * 1e9),
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
    )


def _single_reply(
    cls: type[AnyContext],
    resources: Resources,
    admission: Admission,
    limits: ServerLimits,
    tracing: Tracing,
) -> Callable[[Any, GrpcContext], Awaitable[Any]]:
    parse = _parser(cls)
    encode = cls.reply_codec.encode
    unary_request = not cls.client_streaming
    path = cls.rpc_path()
    streams, unsent = limits.streams, limits.unsent_replies
    settings, traced_rpc = tracing.settings, cls.trace_calls
    # The server builds its handlers on its own loop, the one grpc.aio runs them on.
    loop = _running_loop()

    async def handle(raw: Any, call: GrpcContext) -> Any:
        arrived = perf_counter()
        admission.arrived += 1
        peer = "" if unary_request else await _open_stream(call, cls, admission, streams)
        # Parse and admit inline: this is the hot path of every unary call.
        try:
            request = (
                parse(raw) if unary_request else _admitted_requests(raw, parse, call, admission)
            )
        except Exception as exc:
            await _fail(call, cls, admission, exc)
        if unary_request and not admission.try_acquire():
            await _queue(call, cls, admission)
        admitted = perf_counter()
        traced: ActiveSpan | None = None
        error: BaseException | None = None
        # From here on the slot is ours: every path out, cancellation included, releases it.
        try:
            # No span is made unless tracing is on (one attribute read otherwise).
            if settings.active and traced_rpc:
                traced = _call_span(tracing, cls, call, arrived)
            span = None if traced is None else traced.span
            context: Any = cls(resources, CallInfo(call, tracing, span))
            reply = encode(await context.execute(request))
            _hold_reply(call, reply, unsent, path, loop)
        except asyncio.CancelledError as exc:
            admission.cancelled += 1
            error = exc
            raise
        except Exception as exc:
            error = exc
            await _fail(call, cls, admission, exc)
        else:
            admission.completed += 1
            return reply
        finally:
            if unary_request:
                admission.release()
            else:
                streams.give(peer, 1)
            done = perf_counter()
            admission.times.observe(done - arrived, done - admitted)
            if traced is not None:
                traced.finish(error)  # last: the slot is back whatever the exporter does

    return handle


def _streaming_reply(
    cls: type[AnyContext],
    resources: Resources,
    admission: Admission,
    limits: ServerLimits,
    tracing: Tracing,
) -> Callable[[Any, GrpcContext], AsyncIterator[Any]]:
    parse = _parser(cls)
    encode = cls.reply_codec.encode
    per_request = cls.client_streaming  # bidi: slots per request; server stream: per call
    streams = limits.streams
    settings, traced_rpc = tracing.settings, cls.trace_calls

    async def handle(raw: Any, call: GrpcContext) -> AsyncIterator[Any]:
        arrived = perf_counter()
        admission.arrived += 1
        peer = await _open_stream(call, cls, admission, streams)
        try:
            request = await _stream_request(raw, call, cls, admission, parse, per_request)
        except BaseException:
            streams.give(peer, 1)
            raise
        admitted = perf_counter()
        traced: ActiveSpan | None = None
        error: BaseException | None = None
        try:
            if settings.active and traced_rpc:
                traced = _call_span(tracing, cls, call, arrived)
            span = None if traced is None else traced.span
            context: Any = cls(resources, CallInfo(call, tracing, span))
            replies = context.execute(request)
            try:
                async for reply in replies:
                    yield encode(reply)
            finally:
                # Close the Context's generator here, under our accounting, not at GC time.
                await replies.aclose()
        except (asyncio.CancelledError, GeneratorExit) as exc:
            admission.cancelled += 1
            error = exc
            raise
        except Exception as exc:
            error = exc
            await _fail(call, cls, admission, exc)
        else:
            admission.completed += 1
        finally:
            if not per_request:
                admission.release()
            streams.give(peer, 1)
            done = perf_counter()
            admission.times.observe(done - arrived, done - admitted)
            if traced is not None:
                traced.finish(error)  # last: the slot is back whatever the exporter does

    return handle


async def _stream_request(
    raw: Any,
    call: GrpcContext,
    cls: type[AnyContext],
    admission: Admission,
    parse: Callable[[bytes], Any],
    per_request: bool,
) -> Any:
    """What a streaming-reply Context gets: its admitted requests (bidi), or its request once
    the call holds a slot (server streaming; the caller releases it on every path)."""
    if per_request:
        return _admitted_requests(raw, parse, call, admission)
    try:
        request = parse(raw)
    except Exception as exc:
        await _fail(call, cls, admission, exc)
    if not admission.try_acquire():
        await _queue(call, cls, admission)
    return request


#: grpc's method-handler factory for each (client streaming, server streaming) shape.
METHOD_HANDLERS: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler[Any, Any]]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}
