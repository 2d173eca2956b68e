"""Triton's ``nv_inference_*`` metric families, read from the per-model statistics at scrape time.

Labels ``model`` and ``version``, as Triton's. Durations are cumulative microseconds, as
Triton's counters are. Triton's counters carry no ``_total`` suffix; prometheus-client's text
writer would add one to a family typed ``counter``, so these are written untyped to keep the
names Triton's dashboards and alerts query (Prometheus' rate() works the same on them).

Two families of asyncinfer's own (DESIGN F15) follow the same labels: the dynamic batcher's
queue depth (``asyncinfer_inference_queue_depth``) and, for process instances, how often each
instance was restarted (``asyncinfer_instance_restarts``, with an ``instance`` label).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric, UnknownMetricFamily
from prometheus_client.registry import Collector

from ..metrics import histogram_family
from . import custom_metrics
from .backends.process_instances import ProcessBackend
from .latency import MetricsConfig
from .model import LoadedModel
from .repository.repository import ModelRepository
from .scheduling.dynamic_batcher import DynamicBatcher
from .statistics import ModelStats

__all__ = ["InferenceCollector"]

_LABELS = ["model", "version"]

#: name, help, how to read it from ModelStats.
_COUNTERS: tuple[tuple[str, str, Callable[[ModelStats], int]], ...] = (
    ("nv_inference_request_success", "Number of successful inference requests, all batch sizes",
     lambda s: s.success.count),
    ("nv_inference_request_failure", "Number of failed inference requests, all batch sizes",
     lambda s: s.fail.count),
    ("nv_inference_count", "Number of inferences performed (a batch of n counts n)",
     lambda s: s.inference_count),
    ("nv_inference_exec_count", "Number of model executions performed",
     lambda s: s.execution_count),
    ("nv_inference_request_duration_us", "Cumulative inference request duration in microseconds",
     lambda s: s.success.ns // 1000),
    ("nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds",
     lambda s: s.queue.ns // 1000),
    ("nv_inference_compute_input_duration_us",
     "Cumulative compute input duration in microseconds", lambda s: s.compute_input.ns // 1000),
    ("nv_inference_compute_infer_duration_us",
     "Cumulative compute inference duration in microseconds",
     lambda s: s.compute_infer.ns // 1000),
    ("nv_inference_compute_output_duration_us",
     "Cumulative compute output duration in microseconds", lambda s: s.compute_output.ns // 1000),
)  # fmt: skip


#: The latency histograms (latency.py): name, help, which LatencyHistograms attribute.
_HISTOGRAMS = (
    ("nv_inference_first_response_histogram_ms",
     "Duration from request to first response in milliseconds", "first_response"),
    ("asyncinfer_inference_request_histogram_ms",
     "Inference request duration in milliseconds, successful requests", "request"),
    ("asyncinfer_inference_queue_histogram_ms",
     "Inference queuing duration in milliseconds", "queue"),
    ("asyncinfer_inference_compute_infer_histogram_ms",
     "Compute inference duration in milliseconds (with batching: the batch's execution)",
     "compute_infer"),
)  # fmt: skip
_LATENCY_COUNTERS = frozenset(name for name, _, _ in _COUNTERS if name.endswith("_duration_us"))


class InferenceCollector(Collector):
    """The nv_inference_* families of every ready model version of ``repository``; with
    ``config``'s histogram_latencies, their latency histograms."""

    def __init__(self, repository: ModelRepository, config: MetricsConfig | None = None) -> None:
        self._repository = repository
        self._config = config or MetricsConfig()

    def collect(self) -> Iterator[Metric]:
        versions = self._versions()
        yield from self._histograms(versions)
        for name, documentation, read in _COUNTERS:
            if not self._config.counter_latencies and name in _LATENCY_COUNTERS:
                continue
            family = UnknownMetricFamily(name, documentation, labels=_LABELS)
            for labels, model in versions:
                family.add_metric(labels, read(model.stats))
            yield family
        pending = GaugeMetricFamily(
            "nv_inference_pending_request_count",
            "Instantaneous number of pending requests awaiting execution per-model",
            labels=_LABELS,
        )
        for labels, model in versions:
            pending.add_metric(labels, model.stats.pending)
        yield pending
        yield _queue_depth(versions)
        yield _restarts(versions)
        yield from custom_metrics.collect()  # families models defined (MetricFamily)

    def _histograms(self, versions: list[tuple[list[str], LoadedModel]]) -> Iterator[Metric]:
        if not self._config.histogram_latencies:
            return
        kept = [(labels, h) for labels, model in versions if (h := model.stats.histograms)]
        for name, documentation, attribute in _HISTOGRAMS:
            yield histogram_family(
                name,
                documentation,
                _LABELS,
                ((labels, getattr(histograms, attribute)) for labels, histograms in kept),
            )

    def _versions(self) -> list[tuple[list[str], LoadedModel]]:
        # Copies at each level: loads and unloads change these dicts on the event loop while
        # this runs on the metrics thread; list() of a dict is atomic under the GIL.
        rows = []
        for name, record in list(self._repository.ready_models().items()):
            for version, model in list(record.versions.items()):
                rows.append(([name, str(version)], model))
        return rows


def _queue_depth(versions: list[tuple[list[str], LoadedModel]]) -> Metric:
    family = GaugeMetricFamily(
        "asyncinfer_inference_queue_depth",
        "Requests waiting in the model's dynamic batcher queue, all priority levels",
        labels=_LABELS,
    )
    for labels, model in versions:
        if isinstance(model.scheduler, DynamicBatcher):
            family.add_metric(labels, model.scheduler.queued())
    return family


def _restarts(versions: list[tuple[list[str], LoadedModel]]) -> Metric:
    family = UnknownMetricFamily(
        "asyncinfer_instance_restarts",
        "Times a process instance of the model was restarted after it exited",
        labels=[*_LABELS, "instance"],
    )
    for labels, model in versions:
        if isinstance(model.backend, ProcessBackend):
            for instance, restarts in model.backend.statistics()["restarts"].items():
                family.add_metric([*labels, instance], restarts)
    return family
