"""A loaded model version: runs one ModelInferRequest through its backend, end to end.

Decode and check the inputs, run the backend, check what it returned, apply classification,
frame the reply, and count it all in the version's statistics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy.typing as npt

from ..errors import Internal
from ..pb.inference.grpc_service_pb2 import InferParameter, ModelInferRequest
from ..pb.inference.model_config_pb2 import ModelConfig
from .backends.engine import EngineBackend
from .backends.python import PythonBackend
from .classification import classify
from .datatypes import BYTES
from .ensemble import EnsembleBackend
from .modelconfig import Signature
from .python_model import Request, Response
from .shared_memory import RequestShm, SharedMemory
from .statistics import ModelStats
from .tensors import OutputPlan, check_output, decode_inputs, encode_response, plan_outputs

__all__ = ["LoadedModel", "parameter_values"]

Array = npt.NDArray[Any]


def parameter_values(parameters: Mapping[str, InferParameter]) -> dict[str, Any]:
    """Request parameters as plain Python values."""
    values: dict[str, Any] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        values[key] = getattr(parameter, choice) if choice else None
    return values


@dataclasses.dataclass(eq=False)
class LoadedModel:
    """One ready version of a model."""

    config: ModelConfig
    version: int
    signature: Signature
    backend: PythonBackend | EngineBackend | EnsembleBackend
    labels: Mapping[str, Sequence[str]]
    stats: ModelStats = dataclasses.field(default_factory=ModelStats)

    @property
    def name(self) -> str:
        return self.config.name

    async def infer(self, request: ModelInferRequest, shm: SharedMemory | None = None) -> bytes:
        """The serialized ModelInferResponse for ``request``; RpcError when it fails.

        Shared-memory inputs and outputs are leased from ``shm`` for the whole call: the
        leases return only after the reply is framed, on every path (cancellation included).
        """
        with shm.scope() if shm is not None else contextlib.nullcontext() as scope:
            return await self._infer(request, scope)

    async def _infer(self, request: ModelInferRequest, scope: RequestShm | None) -> bytes:
        start = time.perf_counter_ns()
        self.stats.pending += 1
        try:
            arrays, batch_size = decode_inputs(request, self.signature, scope)
            plans = plan_outputs(request, self.signature)
            decoded = time.perf_counter_ns()
            model_request = Request(
                arrays,
                requested_output_names=[plan.spec.name for plan in plans],
                parameters=parameter_values(request.parameters),
                id=request.id,
            )
            response = await self.run(model_request)
            computed = time.perf_counter_ns()
            outputs = self._outputs(response, plans)
            spans = [plan.shm for plan in plans]
            body = encode_response(request, self.name, str(self.version), outputs, spans, scope)
        except BaseException:
            self.stats.failed(time.perf_counter_ns() - start)
            raise
        finally:
            self.stats.pending -= 1
        done = time.perf_counter_ns()
        self.stats.succeeded(
            batch_size,
            total_ns=done - start,
            input_ns=decoded - start,
            infer_ns=computed - decoded,
            output_ns=done - computed,
        )
        return body

    async def run(self, request: Request) -> Response:
        """Execute one request; a Response carrying an error fails it with INTERNAL."""
        (response,) = await self.backend.execute([request])
        if not isinstance(response, Response):
            raise TypeError(
                f"model '{self.name}' execute() returned {type(response).__name__} where a "
                "Response was expected"
            )
        if response.error is not None:
            raise Internal(f"model '{self.name}' failed the request: {response.error.message}")
        return response

    def _outputs(self, response: Response, plans: list[OutputPlan]) -> list[tuple[str, str, Array]]:
        produced = response.outputs()
        outputs = []
        for plan in plans:
            name = plan.spec.name
            if name not in produced:
                raise Internal(f"model '{self.name}' did not produce output '{name}'")
            array = check_output(name, produced[name], plan.spec, self.name)
            if plan.class_count:
                array = classify(
                    array,
                    plan.class_count,
                    self.labels.get(name, ()),
                    batched=self.signature.max_batch_size > 0,
                    what=f"output '{name}' of model '{self.name}'",
                )
                outputs.append((name, BYTES, array))
            else:
                outputs.append((name, plan.spec.datatype.wire, array))
        return outputs
