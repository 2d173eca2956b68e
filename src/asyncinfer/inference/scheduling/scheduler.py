"""The Scheduler protocol (the seam between the data plane and a backend), and what every
scheduler shares: the request it gets, its batch size, and counting an execution.

The data plane (``LoadedModel``) hands every checked request to its model's scheduler with
``submit``, and it alone does; the scheduler decides when and with which other requests it runs
on the backend, and answers the request's own Response. Schedulers get plain Python: the
request, and policies read from the config at load (queue_policy.py, sequence_policy.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy.typing as npt

from ..python_model import Request, Response
from ..statistics import BatchTiming, ModelStats, RequestTiming

__all__ = ["Scheduler", "SizedRequest", "batch_size_of", "deadline_of", "record_execution"]


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
        timing: RequestTiming | None = None,
    ) -> Response | None:
        """``request``'s Response once it ran; None for a decoupled model, whose responses
        went through the request's ResponseSender.

        ``priority`` (0: the model's default level) and ``timeout_us`` (0: the queue policy's
        default) are the request's own parameters; a scheduler that does not queue ignores
        them. ``timing``, when given, gets ``compute_start_ns``: when the execution that
        serves the request began (left alone when it began at once).
        """
        ...


class SizedRequest(Request):
    """A Request whose batch size was found when its inputs were checked: the schedulers
    read it instead of looking at the inputs again."""

    __slots__ = ("batch_size", "deadline")

    def __init__(
        self,
        inputs: Mapping[str, npt.NDArray[Any]],
        *,
        batch_size: int,
        requested_output_names: Sequence[str] = (),
        parameters: Mapping[str, Any] | None = None,
        id: str = "",
        deadline: float | None = None,
    ) -> None:
        super().__init__(
            inputs, requested_output_names=requested_output_names, parameters=parameters, id=id
        )
        self.batch_size = batch_size
        #: ``time.monotonic()`` seconds after which the caller no longer waits: a queued
        #: request past it is dropped, never run (None: no deadline).
        self.deadline = deadline

    @classmethod
    def planned(
        cls,
        arrays: Mapping[str, npt.NDArray[Any]],
        batch_size: int,
        requested_output_names: tuple[str, ...],
        parameters: Mapping[str, Any],
        id: str,
        deadline: float | None,
    ) -> SizedRequest:
        """The data plane's request: arrays it checked, positional (every request's path)."""
        request = cls._of_arrays(arrays, requested_output_names, parameters, id)
        request.batch_size = batch_size
        request.deadline = deadline
        return request


def deadline_of(request: Request) -> float | None:
    """The caller's deadline of ``request`` (``time.monotonic()`` seconds), if it has one."""
    return request.deadline if isinstance(request, SizedRequest) else None


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
