"""The direct scheduler: one request per backend execute, as many at once as the backend has
instances (the backend's own instance pool bounds them), no queue of its own."""

from __future__ import annotations

import time

from ..backends.base import Backend
from ..python_model import Request, Response
from ..statistics import ModelStats, RequestTiming
from .scheduler import batch_size_of

__all__ = ["DirectScheduler"]


class DirectScheduler:
    """One request per backend execute; concurrency is bounded by the backend's instances.

    A decoupled model runs here too (its config may not ask for batching): its execute returns
    no Response, its responses having gone through the request's sender, and it counts as one
    execution like any other.
    """

    def __init__(self, max_batch_size: int, backend: Backend, stats: ModelStats) -> None:
        self._backend = backend
        self._stats = stats
        self._max_batch_size = max_batch_size

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
        timing: RequestTiming | None = None,
    ) -> Response | None:
        # No measure_batch(): a backend reports merge/split time only for batches of several
        # requests, and this scheduler never forms one.
        start = time.perf_counter_ns()
        responses = await self._backend.execute([request])
        self._stats.count_execution(
            batch_size_of(request, self._max_batch_size), 0, time.perf_counter_ns() - start, 0
        )
        return responses[0] if responses else None
