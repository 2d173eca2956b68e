"""Decoupled models over ModelStreamInfer: any number of responses per request.

The model gets a ResponseSender on each request and sends responses (and finally the final
flag) through it; this module turns each into a framed ModelStreamInferResponse. Triton's
stream clients see the ``triton_final_response`` response parameter when the request asked
for it with ``triton_enable_empty_final_response``; only then is a flags-only final sent, as an
empty response.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from ..errors import RpcError, internal_error
from ..pb.inference.grpc_service_pb2 import (
    InferParameter,
    ModelInferRequest,
    ModelInferResponse,
    ModelStreamInferResponse,
)
from .model import LoadedModel
from .python_model import Response, ResponseSender, Sent
from .shared_memory import RequestShm, SharedMemory
from .wire.encode import OutputPlan, varint

__all__ = ["stream_error", "stream_responses"]

ENABLE_EMPTY_FINAL = "triton_enable_empty_final_response"
FINAL = "triton_final_response"
_INFER_RESPONSE_TAG = b"\x12"  # ModelStreamInferResponse.infer_response: field 2


def stream_error(request: ModelInferRequest, message: str) -> ModelStreamInferResponse:
    """A stream response carrying ``message`` for ``request``."""
    return ModelStreamInferResponse(
        error_message=message,
        infer_response=ModelInferResponse(
            model_name=request.model_name, model_version=request.model_version, id=request.id
        ),
    )


def frame(body: bytes) -> bytes:
    """A serialized ModelInferResponse wrapped as a ModelStreamInferResponse."""
    return _INFER_RESPONSE_TAG + varint(len(body)) + body


def _final_parameter(final: bool) -> bytes:
    # Protobuf merges repeated map entries, so this appends the parameter to any response.
    return ModelInferResponse(
        parameters={FINAL: InferParameter(bool_param=final)}
    ).SerializeToString()


async def stream_responses(
    model: LoadedModel, request: ModelInferRequest, shm: SharedMemory | None
) -> AsyncIterator[bytes | ModelStreamInferResponse]:
    """Every response of one request to a decoupled model, framed for the stream."""
    enable_empty = (
        ENABLE_EMPTY_FINAL in request.parameters
        and request.parameters[ENABLE_EMPTY_FINAL].bool_param
    )
    start = time.perf_counter_ns()
    model.stats.pending += 1  # Triton's pending count: from arrival to the last response
    try:
        with shm.scope() if shm is not None else contextlib.nullcontext() as scope:
            try:
                model_request, plans, batch_size = model.decode(request, scope)
            except RpcError as exc:
                model.stats.failed(time.perf_counter_ns() - start)
                yield stream_error(request, exc.message)
                return
            queue: asyncio.Queue[Sent] = asyncio.Queue()
            sender = ResponseSender(asyncio.get_running_loop(), queue, request.id)
            model_request._attach_sender(sender)
            execution = asyncio.ensure_future(model.backend.execute([model_request]))
            failed = finished = False
            try:
                async for response, final in _sent(queue, execution, model.name):
                    finished = final
                    if isinstance(response, str):
                        failed = True
                        yield stream_error(request, response)
                        break
                    if response is None and not enable_empty:
                        continue
                    item, ok = _framed(model, request, response, final, enable_empty, plans,
                                       batch_size, scope)  # fmt: skip
                    failed = failed or not ok
                    yield item
            finally:
                # After the final flag the execute is let finish (it returns its instance); if
                # the stream went away first, the execute is cancelled rather than left running.
                if not finished and not execution.done():
                    execution.cancel()
                with contextlib.suppress(BaseException):
                    await execution
        _record(model, failed, batch_size, time.perf_counter_ns() - start)
    finally:
        model.stats.pending -= 1


def _framed(
    model: LoadedModel,
    request: ModelInferRequest,
    response: Response | None,
    final: bool,
    enable_empty: bool,
    plans: list[OutputPlan],
    batch_size: int,
    scope: RequestShm | None,
) -> tuple[bytes | ModelStreamInferResponse, bool]:
    """One sent response as a stream item, and whether it was a good one."""
    try:
        body = _body(model, request, response, plans, batch_size, scope)
    except RpcError as exc:
        return stream_error(request, exc.message), False
    return frame(body + (_final_parameter(final) if enable_empty else b"")), True


def _record(model: LoadedModel, failed: bool, batch_size: int, total_ns: int) -> None:
    """The request's statistics; like Triton, only a successful execution is counted one."""
    if failed:
        model.stats.failed(total_ns)
        return
    model.stats.executed(batch_size, input_ns=0, infer_ns=total_ns, output_ns=0)
    model.stats.succeeded(
        batch_size, total_ns=total_ns, queue_ns=0, input_ns=0, infer_ns=total_ns, output_ns=0
    )


def _body(
    model: LoadedModel,
    request: ModelInferRequest,
    response: Response | None,
    plans: list[OutputPlan],
    batch_size: int,
    scope: RequestShm | None,
) -> bytes:
    """A serialized ModelInferResponse: the response's outputs, or none for a flags-only final."""
    if response is None:
        return ModelInferResponse(
            model_name=model.name, model_version=str(model.version), id=request.id
        ).SerializeToString()
    response = model.checked(response)
    return model.encode(request, response, plans, batch_size, scope)


async def _sent(
    queue: asyncio.Queue[Sent], execution: asyncio.Future[list[Response]], model: str
) -> AsyncIterator[tuple[Response | str | None, bool]]:
    """What the sender queued, until the final flag; a failed execute yields its message.

    An execute that returns without the final flag may still send from a thread of its own,
    so reading goes on; the stream's deadline or cancellation bounds that wait.
    """
    while True:
        if execution.done():
            item = await queue.get()
        else:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait((getter, execution), return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()  # an item not yet taken stays in the queue
                exc = None if execution.cancelled() else execution.exception()
                if exc is not None:
                    yield _failure(exc, model), True
                    return
                continue
            item = getter.result()
        yield item
        if item[1]:
            return


def _failure(exc: BaseException, model: str) -> str:
    if isinstance(exc, RpcError):
        message = exc.message
    else:
        message = internal_error(exc, f"model '{model}' execute()").message
    return f"model '{model}' failed the request: {message}"
