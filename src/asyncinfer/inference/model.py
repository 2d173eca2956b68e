"""A loaded model version: runs one ModelInferRequest through its scheduler, end to end.

Decode and check the inputs, submit to the scheduler (which runs the backend, alone or in a
batch), check what came back, apply classification, frame the reply, and count it all in the
version's statistics.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy.typing as npt

from ..datatypes import BYTES
from ..errors import Internal, InvalidArgument, Unimplemented
from ..pb.inference.grpc_service_pb2 import InferParameter, ModelInferRequest
from ..pb.inference.model_config_pb2 import ModelConfig
from ..signature import Signature
from .backends.base import Backend
from .classification import classify
from .python_model import Request, Response
from .scheduling.scheduler import Scheduler, SizedRequest
from .shared_memory import RequestShm, SharedMemory
from .statistics import ModelStats, RequestClock, Timing
from .wire.encode import OutputPlan, check_output, decode_inputs, encode_response, plan_outputs

__all__ = ["LoadedModel", "parameter_values", "scheduling_parameters"]

Array = npt.NDArray[Any]


def parameter_values(parameters: Mapping[str, InferParameter]) -> dict[str, Any]:
    """Request parameters as plain Python values."""
    values: dict[str, Any] = {}
    if not parameters:
        return values
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        values[key] = getattr(parameter, choice) if choice else None
    return values


def scheduling_parameters(model: str, parameters: Mapping[str, Any]) -> tuple[int, int]:
    """The request's ``priority`` and ``timeout`` (microseconds) parameters, 0 when absent."""
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


@dataclasses.dataclass(eq=False)
class LoadedModel:
    """One ready version of a model: its backend, and the scheduler that feeds it."""

    config: ModelConfig
    version: int
    signature: Signature
    backend: Backend
    labels: Mapping[str, Sequence[str]]
    scheduler: Scheduler
    stats: ModelStats
    # Per-model constants, read on every request: computed once here.
    _decoupled: bool = dataclasses.field(init=False, repr=False)
    _version_text: str = dataclasses.field(init=False, repr=False)
    _batched: bool = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._decoupled = self.config.model_transaction_policy.decoupled
        self._version_text = str(self.version)
        self._batched = self.signature.max_batch_size > 0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def decoupled(self) -> bool:
        """Answers through ResponseSenders, any number per request (decoupled.py)."""
        return self._decoupled

    def account(self) -> RequestClock:
        """The ``with`` block that counts one request in this version's statistics."""
        return RequestClock(self.stats)

    async def unload(self) -> None:
        """Stop the scheduler (waiting requests fail), then release the backend."""
        try:
            await self.scheduler.stop()
        finally:
            await self.backend.unload()

    async def infer(self, request: ModelInferRequest, shm: SharedMemory | None = None) -> bytes:
        """The serialized ModelInferResponse for ``request``; RpcError when it fails.

        Shared-memory inputs and outputs are leased from ``shm`` for the whole call: the
        leases return only after the reply is framed, on every path (cancellation included).
        """
        if self.decoupled:
            raise Unimplemented(
                "ModelInfer RPC doesn't support models with decoupled transaction policy: "
                f"model '{self.name}' is decoupled; send its requests over ModelStreamInfer"
            )
        with shm.scope() if shm is not None else contextlib.nullcontext() as scope:
            return await self._infer(request, scope)

    async def _infer(self, request: ModelInferRequest, scope: RequestShm | None) -> bytes:
        with self.account() as clock:
            model_request, plans, batch_size = self.decode(request, scope)
            priority, timeout_us = scheduling_parameters(self.name, model_request.parameters)
            clock.inputs_done(batch_size)
            response = await self.run(
                model_request, priority=priority, timeout_us=timeout_us, timing=clock.timing
            )
            clock.computed()
            return self.encode(request, response, plans, batch_size, scope)

    def encode(
        self,
        request: ModelInferRequest,
        response: Response,
        plans: list[OutputPlan],
        batch_size: int,
        scope: RequestShm | None,
    ) -> bytes:
        """The serialized ModelInferResponse carrying ``response``'s outputs named in ``plans``
        (checked, classified, written to shared memory where a plan says so)."""
        outputs = self.outputs(response, plans, batch_size if self._batched else None)
        spans = [plan.shm for plan in plans]
        return encode_response(request, self.name, self._version_text, outputs, spans, scope)

    def decode(
        self, request: ModelInferRequest, scope: RequestShm | None
    ) -> tuple[Request, list[OutputPlan], int]:
        """The model's Request for ``request``, the outputs to send, and its batch size."""
        arrays, batch_size = decode_inputs(request, self.signature, scope)
        plans = plan_outputs(request, self.signature)
        model_request = SizedRequest(
            arrays,
            batch_size=batch_size,
            requested_output_names=[plan.spec.name for plan in plans],
            parameters=parameter_values(request.parameters),
            id=request.id,
        )
        return model_request, plans, batch_size

    async def run(
        self,
        request: Request,
        *,
        priority: int = 0,
        timeout_us: int = 0,
        timing: Timing | None = None,
    ) -> Response:
        """Execute one request; a Response carrying an error fails it with INTERNAL."""
        response = await self.scheduler.submit(
            request, priority=priority, timeout_us=timeout_us, timing=timing
        )
        return self.checked(response)

    def checked(self, response: object) -> Response:
        """``response`` if it is a successful Response; INTERNAL naming the model if not."""
        if not isinstance(response, Response):
            raise TypeError(
                f"model '{self.name}' execute() returned {type(response).__name__} where a "
                "Response was expected"
            )
        if response.error is not None:
            raise Internal(f"model '{self.name}' failed the request: {response.error.message}")
        return response

    def outputs(
        self, response: Response, plans: list[OutputPlan], batch_size: int | None
    ) -> list[tuple[str, str, Array]]:
        produced = response.outputs()
        outputs = []
        for plan in plans:
            name = plan.spec.name
            if name not in produced:
                raise Internal(f"model '{self.name}' did not produce output '{name}'")
            array = check_output(name, produced[name], plan.spec, self.name, batch_size)
            if plan.class_count:
                array = classify(
                    array,
                    plan.class_count,
                    self.labels.get(name, ()),
                    batched=self._batched,
                    what=f"output '{name}' of model '{self.name}'",
                )
                outputs.append((name, BYTES, array))
            else:
                outputs.append((name, plan.spec.datatype.wire, array))
        return outputs
