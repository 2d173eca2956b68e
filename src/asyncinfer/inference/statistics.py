"""Per-model-version inference statistics, in the shape of the protocol's ModelStatistics."""

from __future__ import annotations

import dataclasses
import time

from ..pb.inference.grpc_service_pb2 import ModelStatistics, StatisticDuration

__all__ = ["Duration", "ModelStats"]


@dataclasses.dataclass(slots=True)
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += ns

    def message(self) -> StatisticDuration:
        return StatisticDuration(count=self.count, ns=self.ns)


@dataclasses.dataclass(slots=True)
class ModelStats:
    """Counters of one loaded model version; every request adds to success or fail."""

    success: Duration = dataclasses.field(default_factory=Duration)
    fail: Duration = dataclasses.field(default_factory=Duration)
    queue: Duration = dataclasses.field(default_factory=Duration)
    compute_input: Duration = dataclasses.field(default_factory=Duration)
    compute_infer: Duration = dataclasses.field(default_factory=Duration)
    compute_output: Duration = dataclasses.field(default_factory=Duration)
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0
    #: Requests inside infer() now (decoding, queued, running or framing): Triton's pending count.
    pending: int = 0

    def succeeded(
        self, batch_size: int, *, total_ns: int, input_ns: int, infer_ns: int, output_ns: int
    ) -> None:
        self.success.add(total_ns)
        self.queue.add(max(total_ns - input_ns - infer_ns - output_ns, 0))
        self.compute_input.add(input_ns)
        self.compute_infer.add(infer_ns)
        self.compute_output.add(output_ns)
        self.inference_count += batch_size
        self.execution_count += 1
        self.last_inference_ms = time.time_ns() // 1_000_000

    def failed(self, total_ns: int) -> None:
        self.fail.add(total_ns)

    def message(self, name: str, version: int) -> ModelStatistics:
        stats = ModelStatistics(
            name=name,
            version=str(version),
            last_inference=self.last_inference_ms,
            inference_count=self.inference_count,
            execution_count=self.execution_count,
        )
        inference = stats.inference_stats
        for field in (
            "success",
            "fail",
            "queue",
            "compute_input",
            "compute_infer",
            "compute_output",
        ):
            getattr(inference, field).CopyFrom(getattr(self, field).message())
        return stats
