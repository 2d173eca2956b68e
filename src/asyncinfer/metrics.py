"""Prometheus metrics of a Server: collectors that read its counters at scrape time, and the
HTTP endpoint that serves them.

Nothing is counted twice: the framework families are read from each RPC's Admission (its
outcome counters and its call-time histograms) and the services' own families from collectors
their Resources contribute (``Resources.collectors()``; the inference service adds Triton's
``nv_inference_*``). Every family is built when Prometheus scrapes, so the call path pays only
for the counters it already keeps.

The endpoint is prometheus-client's HTTP server on a daemon thread. Collectors read plain ints
and lists that the event loop mutates; under the GIL each read is atomic, and a scrape may see
one call counted in ``completed`` a moment before it leaves ``in_flight``, which is fine for
metrics.

Family names (labels ``service`` and ``method``; the RPC path is ``/service/method``):

- ``asyncinfer_rpc_calls_total{outcome=completed|failed|cancelled}``: finished calls
- ``asyncinfer_rpc_rejected_total``: calls refused because no admission slot freed in time
- ``asyncinfer_rpc_in_flight``, ``asyncinfer_rpc_waiting``: admitted now / queued for admission
- ``asyncinfer_rpc_max_in_flight``: the admission limit (absent for unlimited RPCs)
- ``asyncinfer_rpc_duration_seconds``: histogram of call time, admission wait included
- ``asyncinfer_rpc_load_ratio``: histogram of time inside execute / call time
- ``process_*``, ``python_*``: prometheus-client's process and platform collectors
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from .admission import Admission, Histogram
from .errors import ConfigError

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

__all__ = ["FrameworkCollector", "MetricsEndpoint", "histogram_family", "registry_for"]

log = logging.getLogger("asyncinfer.metrics")


def histogram_family(
    name: str, documentation: str, labels: list[str], series: Iterable[tuple[list[str], Histogram]]
) -> HistogramMetricFamily:
    """A histogram family from (label values, Histogram) pairs."""
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for values, histogram in series:
        buckets = [(_le(bound), count) for bound, count in histogram.cumulative()]
        family.add_metric(values, buckets, histogram.sum)
    return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class FrameworkCollector(Collector):
    """The ``asyncinfer_rpc_*`` families of every RPC, from its Admission."""

    def __init__(self, admissions: Callable[[], dict[str, Admission]]) -> None:
        self._admissions = admissions

    def collect(self) -> Iterator[Metric]:
        # A copy: the dict is filled once at start, but a scrape must never see it change.
        rpcs = [(_split(path), admission) for path, admission in list(self._admissions().items())]
        labels = ["service", "method"]
        calls = CounterMetricFamily(
            "asyncinfer_rpc_calls", "Finished calls by outcome", labels=[*labels, "outcome"]
        )
        rejected = CounterMetricFamily(
            "asyncinfer_rpc_rejected",
            "Calls refused because no admission slot freed within their deadline",
            labels=labels,
        )
        in_flight = GaugeMetricFamily(
            "asyncinfer_rpc_in_flight", "Calls admitted and running", labels=labels
        )
        waiting = GaugeMetricFamily(
            "asyncinfer_rpc_waiting", "Calls queued for an admission slot", labels=labels
        )
        limit = GaugeMetricFamily(
            "asyncinfer_rpc_max_in_flight", "The RPC's admission limit", labels=labels
        )
        for names, admission in rpcs:
            stats = admission.statistics()
            for outcome in ("completed", "failed", "cancelled"):
                calls.add_metric([*names, outcome], getattr(stats, outcome))
            rejected.add_metric(names, stats.rejected)
            in_flight.add_metric(names, stats.in_flight)
            waiting.add_metric(names, stats.waiting)
            if stats.limit is not None:
                limit.add_metric(names, stats.limit)
        yield from (calls, rejected, in_flight, waiting, limit)
        yield histogram_family(
            "asyncinfer_rpc_duration_seconds",
            "Call duration from arrival to the last reply, admission wait included",
            labels,
            ((names, admission.times.duration) for names, admission in rpcs),
        )
        yield histogram_family(
            "asyncinfer_rpc_load_ratio",
            "Time inside execute divided by call duration (1.0: the call never waited)",
            labels,
            ((names, admission.times.load_ratio) for names, admission in rpcs),
        )


def _split(path: str) -> list[str]:
    _, service, method = path.split("/", 2)
    return [service, method]


def registry_for(
    admissions: Callable[[], dict[str, Admission]], extra: Iterable[Collector] = ()
) -> CollectorRegistry:
    """A registry with the framework, process and platform collectors and ``extra``."""
    from prometheus_client import PlatformCollector, ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(FrameworkCollector(admissions))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    for collector in extra:
        registry.register(collector)
    return registry


class MetricsEndpoint:
    """An HTTP server (a daemon thread) answering GET /metrics from ``registry``."""

    def __init__(self, httpd: WSGIServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread

    @classmethod
    def start(cls, host: str, port: int, registry: Collector) -> MetricsEndpoint:
        try:
            httpd, thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror}; choose another "
                "metrics port, or 0 to pick a free one"
            ) from exc
        return cls(httpd, thread)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, host: str) -> str:
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5.0)
