"""Custom metrics a model defines: counter, gauge and histogram families with labelled
metrics, exported on the server's Prometheus endpoint beside ``nv_inference_*``.

    from asyncinfer.inference.custom_metrics import MetricFamily

    requests = MetricFamily("my_requests_total", "Requests seen", MetricFamily.COUNTER)
    per_model = requests.metric({"model": "simple"})
    per_model.increment(1)

The same objects back ``pb_utils.MetricFamily`` for Triton python models. A family is exported
as long as some object refers to it or one of its metrics (then the garbage collector frees
it); one made again under the same name and kind is the same family. With several workers the
supervisor's endpoint sums the workers' samples (_metrics_aggregate.py). Updates take a lock
per metric, so any thread may update.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.core import (
    Metric as PrometheusFamily,
)

from ..errors import UsageError

__all__ = ["Metric", "MetricFamily", "collect"]

_families: weakref.WeakValueDictionary[str, _State] = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()


class Metric:
    """One labelled series of a family: a counter, a gauge or a histogram."""

    __slots__ = ("_buckets", "_counts", "_family", "_kind", "_lock", "_sum", "_value", "labels")

    def __init__(self, family: _State, labels: Mapping[str, str], buckets: Sequence[float] | None):
        self._family = family  # keeps the family exported while a metric of it is in use
        kind = self._kind = family.kind
        self.labels = dict(labels)
        self._lock = threading.Lock()
        self._value = 0.0
        self._sum = 0.0
        if kind == MetricFamily.HISTOGRAM:
            if not buckets or list(buckets) != sorted(buckets):
                raise UsageError("a histogram metric needs its bucket bounds, ascending")
            self._buckets = [float(b) for b in buckets]
        elif buckets is not None:
            raise UsageError(f"only histogram metrics take buckets, not {kind} ones")
        else:
            self._buckets = []
        self._counts = [0] * (len(self._buckets) + 1)

    def increment(self, value: float = 1.0) -> None:
        """Add ``value`` (a counter's only change; must not be negative for one)."""
        self._require(MetricFamily.COUNTER, MetricFamily.GAUGE, what="increment()")
        if self._kind == MetricFamily.COUNTER and value < 0:
            raise UsageError(f"a counter only goes up; increment({value}) is negative")
        with self._lock:
            self._value += value

    def set(self, value: float) -> None:
        self._require(MetricFamily.GAUGE, what="set()")
        with self._lock:
            self._value = float(value)

    def observe(self, value: float) -> None:
        self._require(MetricFamily.HISTOGRAM, what="observe()")
        with self._lock:
            self._counts[bisect.bisect_left(self._buckets, value)] += 1
            self._sum += value
            self._value += 1

    def value(self) -> float:
        """A counter's or gauge's value; a histogram's count of observations."""
        with self._lock:
            return self._value

    def _require(self, *kinds: str, what: str) -> None:
        if self._kind not in kinds:
            raise UsageError(f"{what} is for {' and '.join(kinds)} metrics, not {self._kind}")

    def _histogram(self) -> tuple[list[tuple[str, float]], float]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        buckets, running = [], 0
        for bound, count in zip([*self._buckets, float("inf")], counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return buckets, total


class _State:
    """A family's metrics, shared by every MetricFamily object of that name."""

    def __init__(self, name: str, description: str, kind: str) -> None:
        self.name = name
        self.description = description
        self.kind = kind
        self.metrics: dict[tuple[tuple[str, str], ...], Metric] = {}
        self.lock = threading.Lock()


class MetricFamily:
    """A named family of metrics of one kind; ``metric(labels)`` is one series of it."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"

    def __init__(self, name: str, description: str, kind: str = COUNTER) -> None:
        if kind not in (self.COUNTER, self.GAUGE, self.HISTOGRAM):
            raise UsageError(f"metric kind must be counter, gauge or histogram, not {kind!r}")
        if not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
            raise UsageError(f"metric family name {name!r} is not a Prometheus metric name")
        with _registry_lock:
            state = _families.get(name)
            if state is None:
                state = _State(name, description, kind)
                _families[name] = state
            elif state.kind != kind:
                raise UsageError(f"metric family '{name}' already exists as a {state.kind}")
        self._state = state

    @property
    def name(self) -> str:
        return self._state.name

    def metric(
        self, labels: Mapping[str, str] | None = None, buckets: Sequence[float] | None = None
    ) -> Metric:
        """The series of these labels (made on first use; the same object after)."""
        labels = dict(labels or {})
        key = tuple(sorted((str(k), str(v)) for k, v in labels.items()))
        state = self._state
        with state.lock:
            found = state.metrics.get(key)
            if found is None:
                found = Metric(state, dict(key), buckets)
                state.metrics[key] = found
            return found


def collect() -> Iterator[PrometheusFamily]:
    """Every live custom family, as Prometheus families (what a scrape adds)."""
    with _registry_lock:
        states = list(_families.values())
    for state in states:
        with state.lock:
            metrics = list(state.metrics.values())
        names = sorted({name for metric in metrics for name in metric.labels})
        yield _family(state, names, metrics)


def _family(state: _State, names: list[str], metrics: list[Metric]) -> PrometheusFamily:
    family: CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily
    if state.kind == MetricFamily.HISTOGRAM:
        family = HistogramMetricFamily(state.name, state.description, labels=names)
        for metric in metrics:
            buckets, total = metric._histogram()
            family.add_metric([metric.labels.get(n, "") for n in names], buckets, total)
        return family
    kind = CounterMetricFamily if state.kind == MetricFamily.COUNTER else GaugeMetricFamily
    family = kind(state.name, state.description, labels=names)
    for metric in metrics:
        family.add_metric([metric.labels.get(n, "") for n in names], metric.value())
    return family
