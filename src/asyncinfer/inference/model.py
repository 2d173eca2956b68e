"""The data plane: one loaded model version, run end to end for every front end.

``LoadedModel.infer`` takes an :class:`~asyncinfer.inference.infer_types.InferRequest` (plain arrays
and parameters, whatever wire it came over) and returns an
:class:`~asyncinfer.inference.infer_types.InferResponse`: it checks and reads the inputs
(inputs.py), submits the request to the model's scheduler (batching, queues, sequences, the
backend's instances), checks what came back, classifies or places outputs in shared memory as
the request asked (outputs.py), honours the request's deadline, marks its cancellation, and
counts it all in the version's statistics. ``LoadedModel.stream`` does the same for a stream:
a decoupled model's any number of responses, through the same scheduler and the same statistics.

Front ends only translate: gRPC's ModelInfer and ModelStreamInfer (rpc/infer.py), HTTP's infer
and generate (http/routes.py, http/generate.py), in-process
calls from models and Contexts (inprocess.py), ensemble steps (repository/ensemble.py) and
warmup (repository/warmup.py). This module is the only caller of a scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from typing import Any

from ..errors import (
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    RpcError,
    Unimplemented,
    internal_error,
)
from ..pb.inference.model_config_pb2 import ModelConfig
from ..signature import Signature
from .backends.base import Backend
from .infer_types import InferRequest, InferResponse
from .inputs import read_planned
from .outputs import all_outputs, respond
from .plans import PlanCache, RequestPlan, declaration_key
from .python_model import Response, ResponseSender, Sent
from .scheduling import Scheduler, SizedRequest
from .statistics import ModelStats, RequestClock

__all__ = ["ENABLE_EMPTY_FINAL", "FINAL", "LoadedModel", "scheduling_parameters"]

#: ``scheduling_parameters`` of a request without parameters.
_NO_PARAMETERS = (0, 0)

#: Request parameter: also send a decoupled request's flags-only final (as an empty response).
ENABLE_EMPTY_FINAL = "triton_enable_empty_final_response"
#: Response parameter, sent when ENABLE_EMPTY_FINAL asks: whether the response is the last.
FINAL = "triton_final_response"


def scheduling_parameters(model: str, parameters: Mapping[str, Any]) -> tuple[int, int]:
    """The request's ``priority`` and ``timeout`` (microseconds) parameters, 0 when absent."""
    if not parameters:
        return 0, 0
    values = []
    for key in ("priority", "timeout"):
        value = parameters.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgument(
                f"request for model '{model}': parameter '{key}' must be a non-negative "
                f"integer, got {value!r}"
            )
        values.append(value)
    return values[0], values[1]


@dataclasses.dataclass(slots=True)
class _Prepared:
    """A request ready for the scheduler: the model's Request, its declaration's plan (batch
    size, output plans and their expected arrays), its scheduling parameters."""

    request: SizedRequest
    plan: RequestPlan
    priority: int
    timeout_us: int


@dataclasses.dataclass(eq=False)
class LoadedModel:
    """One ready version of a model: its backend, the scheduler that feeds it, its statistics."""

    config: ModelConfig
    version: int
    signature: Signature
    backend: Backend
    labels: Mapping[str, Sequence[str]]
    scheduler: Scheduler
    stats: ModelStats
    # Per-model constants, read on every request: computed once here, at load.
    _decoupled: bool = dataclasses.field(init=False, repr=False)
    _ensemble: bool = dataclasses.field(init=False, repr=False)
    _version_text: str = dataclasses.field(init=False, repr=False)
    _batched: bool = dataclasses.field(init=False, repr=False)
    #: The plans of the declarations requests made (plans.py): checked once each.
    plans: PlanCache = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._decoupled = self.config.model_transaction_policy.decoupled
        self._ensemble = self.config.platform == "ensemble"
        self._version_text = str(self.version)
        self._batched = self.signature.max_batch_size > 0
        self.plans = PlanCache(self.signature, all_outputs(self.signature))

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def decoupled(self) -> bool:
        """Answers through ResponseSenders, any number of responses per request: ``stream``."""
        return self._decoupled

    async def unload(self) -> None:
        """Stop the scheduler (waiting requests fail), then release the backend."""
        try:
            await self.scheduler.stop()
        finally:
            await self.backend.unload()

    # ------------------------------------------------------------------ one response

    async def infer(self, request: InferRequest) -> InferResponse:
        """The one response to ``request``; the RpcError that failed it otherwise.

        A decoupled model answers any number of responses: ``stream`` them instead.
        """
        if self._decoupled:
            raise Unimplemented(
                f"a single-response call doesn't support models with decoupled transaction "
                f"policy: model '{self.name}' answers any number of responses per request; "
                "send its requests over a stream (ModelStreamInfer)"
            )
        with RequestClock(self.stats, request.timing) as clock:
            prepared = self._prepare(request)
            clock.inputs_done(prepared.plan.batch_size)
            response = self._checked(await self._submit(prepared, request))
            clock.computed()
            return self._respond(request, response, prepared)

    def _prepare(self, request: InferRequest) -> _Prepared:
        """Inputs checked and read, outputs planned, scheduling parameters read: the
        declaration's checks come from its plan, made at its first request."""
        inputs, outputs = request.inputs, request.outputs
        key = request.declaration
        if key is None:
            key = declaration_key(inputs, outputs)
        plan = None if key is None else self.plans.get(key)
        if plan is None:
            plan = self.plans.plan(inputs, outputs, key)
        arrays = read_planned(request, self.signature, plan.reads)
        parameters = request.parameters
        priority, timeout_us = (
            scheduling_parameters(self.name, parameters) if parameters else _NO_PARAMETERS
        )
        deadline = request.deadline if request.expires is None else _deadline(request)
        model_request = SizedRequest.planned(
            arrays, plan.batch_size, plan.output_names, parameters, request.id, deadline
        )
        model_request._cancellation = request.cancellation  # Request.cancelled() reads it
        return _Prepared(model_request, plan, priority, timeout_us)

    async def _submit(self, prepared: _Prepared, request: InferRequest) -> Response | None:
        """Run the request through the scheduler, within its deadline.

        A caller that goes away (cancellation) marks the request's Cancellation; a scheduler
        drops a request whose caller is gone before it runs.
        """
        expiry = prepared.request.deadline
        if expiry is not None and time.monotonic() >= expiry:
            raise DeadlineExceeded(  # never started: nobody waits for its answer
                f"request for model '{self.name}' reached the model after its deadline"
            )
        submitted = self.scheduler.submit(
            prepared.request,
            priority=prepared.priority,
            timeout_us=prepared.timeout_us,
            timing=request.timing,
        )
        try:
            if request.deadline is None:
                return await submitted
            deadline = asyncio.timeout(request.deadline - time.monotonic())
            try:
                async with deadline:
                    return await submitted
            except TimeoutError:
                if not deadline.expired():
                    raise  # the model's own TimeoutError, not the deadline
                request.cancellation.cancel()
                raise DeadlineExceeded(
                    f"request for model '{self.name}' was not answered before its deadline"
                ) from None
        except asyncio.CancelledError:
            request.cancellation.cancel()
            raise

    def _checked(self, response: object) -> Response:
        """``response`` if it is a successful Response; INTERNAL naming the model if not."""
        if not isinstance(response, Response):
            raise Internal(
                f"model '{self.name}' execute() returned {type(response).__name__} where a "
                "Response was expected"
            )
        if response.error is not None:
            # ModelError(status=...), ModelInputError (INVALID_ARGUMENT), a TritonError's code.
            status = response.error.status or Internal
            raise status(f"model '{self.name}' failed the request: {response.error.message}")
        return response

    def _respond(
        self, request: InferRequest, response: Response, prepared: _Prepared
    ) -> InferResponse:
        plan = prepared.plan
        outputs = respond(
            response.outputs(),
            plan.outputs,
            self.signature,
            self.labels,
            plan.batch_size if self._batched else None,
            request.shm,
            plan.checks,
        )
        parameters = dict(response.parameters) if response.parameters else {}
        return InferResponse(self.config.name, self._version_text, request.id, outputs, parameters)

    # ------------------------------------------------------------------ a stream of responses

    async def stream(self, request: InferRequest) -> AsyncGenerator[InferResponse, None]:
        """Every response to ``request``, the last with ``final`` set.

        A failure does not raise: it comes as a response with ``error`` set, so a stream can
        go on with its next request. A model that is not decoupled answers one response.
        """
        if not self._decoupled:
            try:
                response = await self.infer(request)
            except RpcError as exc:
                yield self._failure(request, exc)
            except Exception as exc:
                yield self._failure(request, internal_error(exc, f"model '{self.name}'"))
            else:
                if self._ensemble:
                    _echo_sequence_flags(request.parameters, response)
                yield response
            return
        async for response in self._decoupled_responses(request):
            yield response

    async def _decoupled_responses(self, request: InferRequest) -> AsyncIterator[InferResponse]:
        """A decoupled model's responses as its execute sends them through the request's
        ResponseSender; the execute itself runs through the scheduler like any request."""
        enable_empty = bool(request.parameters.get(ENABLE_EMPTY_FINAL, False))
        with RequestClock(self.stats, request.timing) as clock:
            try:
                prepared = self._prepare(request)
            except RpcError as exc:
                clock.fail()
                yield self._failure(request, exc)
                return
            clock.inputs_done(prepared.plan.batch_size)
            queue: asyncio.Queue[Sent] = asyncio.Queue()
            prepared.request._attach_sender(
                ResponseSender(asyncio.get_running_loop(), queue, request.id)
            )
            # Owned by this generator: awaited (or cancelled) in the finally below, on every
            # path out, the consumer going away included.
            execution = asyncio.ensure_future(self._submit(prepared, request))
            finished = False
            try:
                async for sent, final in _sent(queue, execution, self.name):
                    finished = final
                    if isinstance(sent, RpcError):
                        clock.fail()
                        yield self._failure(request, sent)
                        break
                    if final:
                        clock.computed()
                    if sent is None and not enable_empty:
                        continue
                    response = self._sent_response(request, sent, final, enable_empty, prepared)
                    if response.error is not None:
                        clock.fail()
                    clock.responded()
                    yield response
            finally:
                # After the final flag the execute is let finish (it returns its instance); if
                # the stream went away first, the execute is cancelled rather than left running.
                if not finished and not execution.done():
                    execution.cancel()
                with contextlib.suppress(BaseException):
                    await execution

    def _sent_response(
        self,
        request: InferRequest,
        sent: Response | None,
        final: bool,
        enable_empty: bool,
        prepared: _Prepared,
    ) -> InferResponse:
        """One response a decoupled model sent (None: a flags-only final), checked."""
        try:
            if sent is None:
                response = InferResponse(self.name, self._version_text, request.id)
            else:
                response = self._respond(request, self._checked(sent), prepared)
        except RpcError as exc:
            return self._failure(request, exc)
        response.final = final
        if enable_empty:
            response.parameters[FINAL] = final
        return response

    def _failure(self, request: InferRequest, error: RpcError) -> InferResponse:
        return InferResponse(self.name, self._version_text, request.id, error=error)


async def _sent(
    queue: asyncio.Queue[Sent], execution: asyncio.Future[Response | None], model: str
) -> AsyncIterator[tuple[Response | RpcError | None, bool]]:
    """What the sender queued, until the final flag; a failed execute yields its error.

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


#: The request parameters of a sequence that an ensemble's stream responses echo (as Triton's).
_SEQUENCE_FLAGS = ("sequence_start", "sequence_end")


def _echo_sequence_flags(parameters: Mapping[str, Any], response: InferResponse) -> None:
    """Echo a sequence request's start and end flags as bool response parameters."""
    if "sequence_id" in parameters or any(flag in parameters for flag in _SEQUENCE_FLAGS):
        for flag in _SEQUENCE_FLAGS:
            response.parameters[flag] = bool(parameters.get(flag, False))


def _deadline(request: InferRequest) -> float | None:
    """The earlier of the request's deadline and its transport's (None: neither is set)."""
    if request.expires is None:
        return request.deadline
    return request.expires if request.deadline is None else min(request.deadline, request.expires)


def _failure(exc: BaseException, model: str) -> RpcError:
    """The error a decoupled execute that raised answers its stream with (an unexpected one is
    logged once with an id, which is all the client sees)."""
    error = exc if isinstance(exc, RpcError) else internal_error(exc, f"model '{model}' execute()")
    return type(error)(f"model '{model}' failed the request: {error.message}")
