"""Per-model-version inference statistics, in the shape of the protocol's ModelStatistics.

Two kinds of events feed them: a finished request (``succeeded``/``failed``: its total, queue
and compute durations, and its batch size into ``inference_count``) and an execution of the
backend (``executed``: ``execution_count`` and the per-batch-size ``batch_stats``). Without
batching there is one execution per request; with it, one execution serves several requests.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import time
from collections.abc import Iterator

from ..pb.inference.grpc_service_pb2 import (
    InferBatchStatistics,
    ModelStatistics,
    StatisticDuration,
)
from .latency import LatencyHistograms, histograms_for_new_models

__all__ = [
    "BatchDurations",
    "BatchTiming",
    "Duration",
    "ModelStats",
    "RequestClock",
    "RequestTiming",
    "batch_timing",
    "measure_batch",
]


@dataclasses.dataclass(slots=True)
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += ns

    def message(self) -> StatisticDuration:
        return StatisticDuration(count=self.count, ns=self.ns)


class RequestTiming:
    """Triton's timestamps of one request, ``time.perf_counter_ns()`` values (0: not reached).

    ``start_ns`` when the data plane took the request (a front end may set it earlier, when the
    request arrived); ``queue_start_ns`` when its inputs were checked and it went to the
    scheduler; ``compute_start_ns`` when the scheduler began the execution that serves it (0:
    at once, no queue); ``compute_end_ns`` when that execution returned (for a decoupled model:
    its final response); ``end_ns`` when its response was ready. Statistics are computed from
    these, and a request's trace spans (queue, compute input, infer, output) can be too.
    """

    __slots__ = ("compute_end_ns", "compute_start_ns", "end_ns", "queue_start_ns", "start_ns")

    def __init__(self, start_ns: int = 0) -> None:
        self.start_ns = start_ns
        self.queue_start_ns = self.compute_start_ns = self.compute_end_ns = self.end_ns = 0


class RequestClock:
    """One request's bookkeeping in its model's statistics, as a ``with`` block.

    Inside, the request is pending; the data plane marks when its inputs were checked
    (``inputs_done``, with its batch size) and when its execution returned (``computed``), in
    the request's RequestTiming. On leaving, a failure (any exception, cancellation included,
    or ``fail()`` for a stream that answered an error) counts its total into ``fail``; success
    counts the five durations into ``succeeded``. A class, not a generator context manager: it
    is on every request's path.
    """

    __slots__ = ("_failed", "_responded", "_stats", "batch_size", "timing")

    def __init__(self, stats: ModelStats, timing: RequestTiming) -> None:
        self._stats = stats
        self.timing = timing
        self.batch_size = 1
        self._failed = False
        self._responded = False

    def __enter__(self) -> RequestClock:
        self._stats.pending += 1
        if not self.timing.start_ns:
            self.timing.start_ns = time.perf_counter_ns()
        return self

    def inputs_done(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.timing.queue_start_ns = time.perf_counter_ns()

    def computed(self) -> None:
        self.timing.compute_end_ns = time.perf_counter_ns()

    def fail(self) -> None:
        """Count the request as failed when the block ends, though nothing was raised."""
        self._failed = True

    def responded(self) -> None:
        """A response is going out (a decoupled model's): the first one dates the request's
        time to first response, when latency histograms are on."""
        histograms = self._stats.histograms
        if histograms is not None and not self._responded:
            self._responded = True
            histograms.first_response.observe((time.perf_counter_ns() - self.timing.start_ns) / 1e6)

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        timing = self.timing
        done = timing.end_ns = time.perf_counter_ns()
        stats = self._stats
        stats.pending -= 1
        if kind is not None or self._failed or not timing.compute_end_ns:
            stats.failed(done - timing.start_ns)
            return
        queued = timing.queue_start_ns
        began = timing.compute_start_ns or queued
        histograms = stats.histograms
        if histograms is not None:
            histograms.observe(
                done - timing.start_ns, began - queued, timing.compute_end_ns - began
            )
            if not self._responded:
                histograms.first_response.observe((done - timing.start_ns) / 1e6)
        stats.count_success(
            self.batch_size,
            done - timing.start_ns,
            began - queued,
            queued - timing.start_ns,
            # With batching: the execution of the batch this request ran in.
            timing.compute_end_ns - began,
            done - timing.compute_end_ns,
        )


@dataclasses.dataclass(slots=True)
class BatchTiming:
    """What a backend reports of one execute: preparing its inputs and taking its outputs apart.

    A scheduler opens one per execute (``measure_batch``); a backend that merges a batch's
    inputs or splits its outputs adds those durations (``batch_timing()``), and the rest of the
    execute counts as inference.
    """

    input_ns: int = 0
    output_ns: int = 0


_BATCH_TIMING: contextvars.ContextVar[BatchTiming | None] = contextvars.ContextVar(
    "asyncinfer_batch_timing", default=None
)


@contextlib.contextmanager
def measure_batch() -> Iterator[BatchTiming]:
    """The BatchTiming of the execute awaited inside this block (same task)."""
    timing = BatchTiming()
    token = _BATCH_TIMING.set(timing)
    try:
        yield timing
    finally:
        _BATCH_TIMING.reset(token)


def batch_timing() -> BatchTiming:
    """The current execute's BatchTiming; a throwaway one outside ``measure_batch``."""
    return _BATCH_TIMING.get() or BatchTiming()


@dataclasses.dataclass(slots=True)
class BatchDurations:
    """Compute durations of the executions of one batch size."""

    compute_input: Duration = dataclasses.field(default_factory=Duration)
    compute_infer: Duration = dataclasses.field(default_factory=Duration)
    compute_output: Duration = dataclasses.field(default_factory=Duration)

    def message(self, batch_size: int) -> InferBatchStatistics:
        return InferBatchStatistics(
            batch_size=batch_size,
            compute_input=self.compute_input.message(),
            compute_infer=self.compute_infer.message(),
            compute_output=self.compute_output.message(),
        )


_REQUEST_FIELDS = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


@dataclasses.dataclass(slots=True)
class ModelStats:
    """Counters of one loaded model version; every request adds to success or fail."""

    success: Duration = dataclasses.field(default_factory=Duration)
    fail: Duration = dataclasses.field(default_factory=Duration)
    queue: Duration = dataclasses.field(default_factory=Duration)
    compute_input: Duration = dataclasses.field(default_factory=Duration)
    compute_infer: Duration = dataclasses.field(default_factory=Duration)
    compute_output: Duration = dataclasses.field(default_factory=Duration)
    batches: dict[int, BatchDurations] = dataclasses.field(default_factory=dict)
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0
    #: Requests inside infer() now (decoding, queued, running or framing): Triton's pending count.
    pending: int = 0
    #: Latency histograms (``--metrics-config histogram_latencies=true``); None when off.
    histograms: LatencyHistograms | None = dataclasses.field(
        default_factory=histograms_for_new_models
    )

    def succeeded(
        self,
        batch_size: int,
        *,
        total_ns: int,
        queue_ns: int,
        input_ns: int,
        infer_ns: int,
        output_ns: int,
    ) -> None:
        """One request answered; ``batch_size`` is its own (1 for a non-batching model)."""
        self.count_success(batch_size, total_ns, queue_ns, input_ns, infer_ns, output_ns)

    def count_success(
        self,
        batch_size: int,
        total_ns: int,
        queue_ns: int,
        input_ns: int,
        infer_ns: int,
        output_ns: int,
    ) -> None:
        """:meth:`succeeded`, positionally: what every request's path calls (no keyword
        arguments to match, no method call per duration)."""
        duration = self.success
        duration.count += 1
        duration.ns += total_ns
        duration = self.queue
        duration.count += 1
        duration.ns += queue_ns
        duration = self.compute_input
        duration.count += 1
        duration.ns += input_ns
        duration = self.compute_infer
        duration.count += 1
        duration.ns += infer_ns
        duration = self.compute_output
        duration.count += 1
        duration.ns += output_ns
        self.inference_count += batch_size
        self.last_inference_ms = time.time_ns() // 1_000_000

    def failed(self, total_ns: int) -> None:
        self.fail.add(total_ns)

    def executed(self, batch_size: int, *, input_ns: int, infer_ns: int, output_ns: int) -> None:
        """One backend execution over ``batch_size`` items (the sum over its requests); the
        durations are its own (for a batch: merging inputs, running, splitting outputs)."""
        self.count_execution(batch_size, input_ns, infer_ns, output_ns)

    def count_execution(
        self, batch_size: int, input_ns: int, infer_ns: int, output_ns: int
    ) -> None:
        """:meth:`executed`, positionally (every execution's path)."""
        self.execution_count += 1
        durations = self.batches.get(batch_size)
        if durations is None:
            durations = self.batches[batch_size] = BatchDurations()
        duration = durations.compute_input
        duration.count += 1
        duration.ns += input_ns
        duration = durations.compute_infer
        duration.count += 1
        duration.ns += infer_ns
        duration = durations.compute_output
        duration.count += 1
        duration.ns += output_ns

    def clear(self) -> None:
        """Back to zero (after warmup, whose runs are not client inferences)."""
        fresh = ModelStats()
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(fresh, field.name))

    def message(self, name: str, version: int) -> ModelStatistics:
        stats = ModelStatistics(
            name=name,
            version=str(version),
            last_inference=self.last_inference_ms,
            inference_count=self.inference_count,
            execution_count=self.execution_count,
        )
        inference = stats.inference_stats
        for field in _REQUEST_FIELDS:
            getattr(inference, field).CopyFrom(getattr(self, field).message())
        stats.batch_stats.extend(
            durations.message(size) for size, durations in sorted(self.batches.items())
        )
        return stats
