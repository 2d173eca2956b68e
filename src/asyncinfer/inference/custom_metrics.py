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

A process instance has families of its own, in its own process: there :func:`record_changes`
notes every family and series made and every series changed, and :meth:`Changes.take` says
what changed since the last take, per series one change (an amount added, a value set, or a
histogram's new bucket counts and sum), whatever number of updates it sums up. The instance
sends it with each reply; the server applies it to its families of the same names
(:class:`Mirror`), which it exports while the model is loaded.
"""

from __future__ import annotations

import bisect
import logging
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

__all__ = ["Changed", "Changes", "Metric", "MetricFamily", "Mirror", "collect", "record_changes"]

log = logging.getLogger("asyncinfer.inference")
_families: weakref.WeakValueDictionary[str, _State] = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()
#: This process's Changes when it is a process instance (record_changes); None in the server,
#: where an update pays only this check.
_changes: Changes | None = None

#: A series: its family's name and its labels, sorted.
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]
#: One series' change: key, histogram bucket bounds (None for others), "add" | "set" |
#: "observe", the amount added or value set (a histogram's sum added), the bucket counts added.
SeriesChange = tuple[str, tuple[tuple[str, str], ...], list[float] | None, str, float, list[int]]
#: What Changes.take() answers: families made (name, description, kind), then series changes.
Changed = tuple[list[tuple[str, str, str]], list[SeriesChange]]


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
            if _changes is not None:
                _changes.touch(self)

    def set(self, value: float) -> None:
        self._require(MetricFamily.GAUGE, what="set()")
        with self._lock:
            self._value = float(value)
            if _changes is not None:
                _changes.touch(self, was_set=True)

    def observe(self, value: float) -> None:
        self._require(MetricFamily.HISTOGRAM, what="observe()")
        with self._lock:
            self._counts[bisect.bisect_left(self._buckets, value)] += 1
            self._sum += value
            self._value += 1
            if _changes is not None:
                _changes.touch(self)

    def value(self) -> float:
        """A counter's or gauge's value; a histogram's count of observations."""
        with self._lock:
            return self._value

    def _apply(self, operation: str, amount: float, counts: Sequence[int]) -> None:
        """A process instance's change of this series (see Changes)."""
        with self._lock:
            if operation == "set":
                self._value = amount
            elif operation == "add":
                self._value += amount
            elif len(counts) != len(self._counts):
                raise UsageError(
                    f"histogram '{self._family.name}' has {len(self._buckets)} bucket bounds "
                    f"here, {len(counts) - 1} in the process instance"
                )
            else:
                self._counts = [
                    mine + theirs for mine, theirs in zip(self._counts, counts, strict=True)
                ]
                self._sum += amount
                self._value += sum(counts)

    def _state(self) -> tuple[float, float, list[int]]:
        with self._lock:
            return self._value, self._sum, list(self._counts)

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
                if _changes is not None:
                    _changes.family(state)
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
                if _changes is not None:
                    _changes.touch(found)  # made: the server makes it too, even unchanged
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


def record_changes() -> Changes:
    """Note every change of this process's custom metrics from now on (a process instance)."""
    global _changes
    if _changes is None:
        _changes = Changes()
    return _changes


class Changes:
    """What a process instance's custom metrics did since the last :meth:`take`.

    An update marks its series under the series' lock (then this object's: always in that
    order); ``take`` reads each marked series' state and answers the difference from what it
    answered last time, so updates made while it runs go into this take or the next, never
    lost or counted twice.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: list[tuple[str, str, str]] = []
        self._touched: dict[Metric, bool] = {}  # the series, and whether set() was called
        #: What the last take answered for each series (value, sum, bucket counts).
        self._taken: dict[Metric, tuple[float, float, list[int]]] = {}

    def family(self, state: _State) -> None:
        with self._lock:
            self._families.append((state.name, state.description, state.kind))

    def touch(self, metric: Metric, *, was_set: bool = False) -> None:
        with self._lock:
            self._touched[metric] = was_set or self._touched.get(metric, False)

    def take(self) -> Changed | None:
        """The changes since the last take (None: none), to send to the server."""
        with self._lock:
            families, self._families = self._families, []
            touched, self._touched = self._touched, {}
        if not families and not touched:
            return None
        return families, [self._change(metric, was_set) for metric, was_set in touched.items()]

    def _change(self, metric: Metric, was_set: bool) -> SeriesChange:
        value, total, counts = metric._state()
        before = self._taken.get(metric)
        self._taken[metric] = (value, total, counts)
        value_was, sum_was, counts_were = before or (0.0, 0.0, [0] * len(counts))
        name, labels = metric._family.name, tuple(sorted(metric.labels.items()))
        if metric._kind == MetricFamily.HISTOGRAM:
            added = [now - then for now, then in zip(counts, counts_were, strict=True)]
            return name, labels, list(metric._buckets), "observe", total - sum_was, added
        if was_set:
            return name, labels, None, "set", value, []
        return name, labels, None, "add", value - value_was, []


class Mirror:
    """The server's side of one model's process instances' Changes: applies them to this
    process's families of the same names and keeps those exported while the model is loaded
    (drop the Mirror on unload)."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._families: dict[str, MetricFamily] = {}
        self._refused: set[str] = set()  # families that cannot be applied: said once

    def apply(self, changed: Changed) -> None:
        """Apply ``changed``; a family that clashes with one of this process (another kind,
        other buckets) is logged once and skipped, never raised."""
        families, series = changed
        for name, description, kind in families:
            try:
                self._families[name] = MetricFamily(name, description, kind)
            except UsageError as exc:
                self._refuse(name, exc)
        for name, labels, buckets, operation, amount, counts in series:
            family = self._families.get(name)
            if family is None or name in self._refused:
                continue
            try:
                family.metric(dict(labels), buckets)._apply(operation, amount, counts)
            except UsageError as exc:
                self._refuse(name, exc)

    def clear(self) -> None:
        """The model is unloaded: its families are exported no longer (once nothing else in
        this process refers to them, as for a thread instance's)."""
        self._families.clear()

    def _refuse(self, name: str, exc: UsageError) -> None:
        if name not in self._refused:
            self._refused.add(name)
            log.warning(
                "custom metric family '%s' of model '%s' (a process instance) is not exported: %s",
                name,
                self._model,
                exc,
            )
