"""The scheduler seam between a loaded model and its backend, and the direct scheduler.

``LoadedModel`` hands every decoded request to its scheduler with ``submit``; the scheduler
decides when and with which other requests it runs on the backend, and answers the request's
own Response. ``make_scheduler`` picks one from the model config: ``dynamic_batching`` -> the
DynamicBatcher (batcher.py), ``sequence_batching`` -> a sequence batcher, else the
DirectScheduler (one request per execute, as many at once as the backend has instances).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy.typing as npt

from ...errors import InvalidArgument
from ...pb.inference.model_config_pb2 import ModelConfig
from ..backends.base import Backend
from ..python_model import Request, Response
from ..statistics import BatchTiming, ModelStats, Timing

__all__ = [
    "DirectScheduler",
    "Scheduler",
    "SizedRequest",
    "batch_size_of",
    "check_scheduling",
    "make_scheduler",
    "record_execution",
]

#: The config's scheduling choices this server runs (None: no scheduling block).
SUPPORTED_SCHEDULING: tuple[str | None, ...] = (None, "dynamic_batching", "sequence_batching")


class Scheduler(Protocol):
    """Runs requests on a backend; owned by one LoadedModel, started and stopped with it."""

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Stop taking requests; requests still waiting fail with UNAVAILABLE."""
        ...

    async def submit(
        self,
        request: Request,
        *,
        priority: int = 0,
        timeout_us: int = 0,
        timing: Timing | None = None,
    ) -> Response:
        """``request``'s Response once it ran.

        ``priority`` (0: the model's default level) and ``timeout_us`` (0: the queue policy's
        default) are the request's own parameters; a scheduler that does not queue ignores
        them. ``timing``, when given, receives the time the request waited before it ran.
        """
        ...


class SizedRequest(Request):
    """A Request whose batch size was found when its inputs were checked: the schedulers
    read it instead of looking at the inputs again."""

    __slots__ = ("batch_size",)

    def __init__(
        self,
        inputs: Mapping[str, npt.NDArray[Any]],
        *,
        batch_size: int,
        requested_output_names: Sequence[str] = (),
        parameters: Mapping[str, Any] | None = None,
        id: str = "",
    ) -> None:
        super().__init__(
            inputs, requested_output_names=requested_output_names, parameters=parameters, id=id
        )
        self.batch_size = batch_size


def batch_size_of(request: Request, max_batch_size: int) -> int:
    """Items in ``request``: its inputs' first extent when the model batches, else 1."""
    if max_batch_size <= 0:
        return 1
    if isinstance(request, SizedRequest):
        return request.batch_size
    for tensor in request.inputs():
        shape = tensor.as_numpy().shape
        if shape:
            return int(shape[0])
    return 1


def record_execution(stats: ModelStats, items: int, start_ns: int, measured: BatchTiming) -> None:
    """Count one backend execute that began at ``start_ns`` into ``stats.executed``."""
    total = time.perf_counter_ns() - start_ns
    stats.executed(
        items,
        input_ns=measured.input_ns,
        infer_ns=max(total - measured.input_ns - measured.output_ns, 0),
        output_ns=measured.output_ns,
    )


class DirectScheduler:
    """One request per backend execute; concurrency is bounded by the backend's instances."""

    def __init__(self, config: ModelConfig, backend: Backend, stats: ModelStats) -> None:
        self._backend = backend
        self._stats = stats
        self._max_batch_size = config.max_batch_size

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def submit(
        self,
        request: Request,
        *,
        priority: int = 0,
        timeout_us: int = 0,
        timing: Timing | None = None,
    ) -> Response:
        # No measure_batch(): a backend reports merge/split time only for batches of several
        # requests, and this scheduler never forms one.
        start = time.perf_counter_ns()
        (response,) = await self._backend.execute([request])
        self._stats.executed(
            batch_size_of(request, self._max_batch_size),
            input_ns=0,
            infer_ns=time.perf_counter_ns() - start,
            output_ns=0,
        )
        return response


def check_scheduling(config: ModelConfig) -> None:
    """InvalidArgument naming the model when its scheduling choice is not available here.

    Called before a backend loads, so that an unsupported config costs nothing.
    """
    choice = config.WhichOneof("scheduling_choice")
    if choice not in SUPPORTED_SCHEDULING:
        raise InvalidArgument(f"failed to load '{config.name}', {choice} is not supported yet")


def make_scheduler(config: ModelConfig, backend: Backend, stats: ModelStats) -> Scheduler:
    """The scheduler the config asks for; InvalidArgument naming the model when it cannot be."""
    if config.platform == "ensemble" and config.HasField("ensemble_scheduling"):
        # An ensemble only routes between its steps' models, and each of those has its own
        # scheduler (batching, queues, instances): the ensemble itself needs no queue.
        return DirectScheduler(config, backend, stats)
    check_scheduling(config)
    choice = config.WhichOneof("scheduling_choice")
    if choice is None:
        return DirectScheduler(config, backend, stats)
    if choice == "dynamic_batching":
        from .dynamic_batcher import DynamicBatcher  # imports this module: resolved at call time

        return DynamicBatcher(config, backend, stats)
    if choice == "sequence_batching":
        from .sequence_batcher import (
            SequenceBatcher,  # sequences.py imports batch_size_of from here
        )

        return SequenceBatcher(config, backend, stats)
    raise InvalidArgument(f"failed to load '{config.name}', {choice} is not supported yet")
