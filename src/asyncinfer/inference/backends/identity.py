"""Triton's ``identity`` backend: each output is the input at the same position, for pipelines
and load tests that need no model.

``backend: "identity"`` in a config; the i-th output (config order) answers the i-th input's
array as it arrived (no copy), for every datatype. The model parameter ``execute_delay_ms``
(default 0) makes every execute take that long, on the loop (an instance is held meanwhile, so
``instance_group`` counts bound the executes at once, and dynamic batching forms batches while
instances are busy).
"""

from __future__ import annotations

import asyncio

from ...errors import InvalidArgument
from ...pb.inference.model_config_pb2 import ModelConfig
from ..python_model import Request, Response, Tensor
from .base import instance_count

__all__ = ["IDENTITY", "IdentityBackend"]

IDENTITY = "identity"
DELAY = "execute_delay_ms"


class IdentityBackend:
    """One loaded version of an identity model."""

    def __init__(self, config: ModelConfig, version: int) -> None:
        self.name = config.name
        self.version = version
        if len(config.output) != len(config.input):
            raise InvalidArgument(
                f"failed to load '{self.name}', the identity backend needs as many outputs as "
                f"inputs (output i answers input i); it has {len(config.input)} inputs and "
                f"{len(config.output)} outputs"
            )
        for given, answered in zip(config.input, config.output, strict=True):
            if given.data_type != answered.data_type:
                raise InvalidArgument(
                    f"failed to load '{self.name}', identity output '{answered.name}' must have "
                    f"the datatype of input '{given.name}'"
                )
        self._pairs = [(i.name, o.name) for i, o in zip(config.input, config.output, strict=True)]
        self._delay = _delay_seconds(config)
        self._count = instance_count(config)
        self._instances = asyncio.Semaphore(self._count)

    @property
    def instance_count(self) -> int:
        return self._count

    async def execute(self, requests: list[Request]) -> list[Response]:
        async with self._instances:
            if self._delay:
                await asyncio.sleep(self._delay)
            return [self._one(request) for request in requests]

    def _one(self, request: Request) -> Response:
        outputs = []
        for given, answered in self._pairs:
            tensor = request.input(given)
            if tensor is not None:  # an optional input not sent has no output
                outputs.append(Tensor(answered, tensor.as_numpy()))
        return Response(outputs)

    async def unload(self) -> None:
        for _ in range(self._count):  # the executes in flight end first
            await self._instances.acquire()


def _delay_seconds(config: ModelConfig) -> float:
    text = config.parameters[DELAY].string_value if DELAY in config.parameters else "0"
    try:
        delay = float(text)
    except ValueError:
        delay = -1.0
    if delay < 0:
        raise InvalidArgument(
            f"failed to load '{config.name}', parameter '{DELAY}' must be a non-negative number "
            f"of milliseconds, not '{text}'"
        )
    return delay / 1000.0
