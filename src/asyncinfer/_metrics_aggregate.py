"""The supervisor's metrics: one coherent set summed over its workers' own endpoints.

Why not prometheus-client's multiprocess mode: it keeps values only for metrics that are
incremented through its Counter/Gauge/Histogram objects (mmap files per process), and it cannot
carry custom collectors, so every call would pay for a second set of counters on the hot path.
Instead each worker serves its own endpoint on a free loopback port (collectors reading its live
counters), reports the URL to the supervisor with its ready message, and the supervisor's
endpoint scrapes every live worker when it is scraped itself and adds the samples up.

Samples with the same name and labels are summed (counters, gauges such as in-flight and
pending counts, histogram buckets, sums and counts all add across processes). Process and
platform families are per process and not summable: they get a ``worker`` label instead (the
supervisor's own as ``worker="supervisor"``).

Summed counters never go backwards, which Prometheus would read as a reset (a false spike in
``rate()``): a worker whose scrape fails counts with its last good counter and histogram samples,
and a worker that left (it died, or its index now reports another URL: its replacement) has its
last counter and histogram samples folded into a retired total that is always added. Gauges are
not carried: a missing worker's in-flight or pending counts are not current. The supervisor
also calls ``refresh()`` every second or so, so a worker that is killed loses at most what it
served since that last refresh, not everything since the last Prometheus scrape.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

from prometheus_client import PlatformCollector, ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["WorkersCollector", "supervisor_registry"]

log = logging.getLogger("asyncinfer.metrics")

#: Families that describe one process: labelled by worker, never summed.
_PER_PROCESS_PREFIXES = ("process_", "python_")
_SCRAPE_TIMEOUT = 5.0
#: Family types whose samples only grow: carried over a failed scrape and kept when retired.
_CARRIED_TYPES = ("counter", "histogram", "summary", "unknown")

SampleKey = tuple[str, tuple[tuple[str, str], ...]]
Sums = dict[str, dict[SampleKey, float]]


class WorkersCollector(Collector):
    """Sums the families the workers at ``urls()`` (index -> metrics URL) serve."""

    def __init__(self, urls: Callable[[], dict[int, str]]) -> None:
        self._urls = urls
        self._own = [ProcessCollector(registry=None), PlatformCollector(registry=None)]
        # The metrics endpoint serves scrapes from several threads: one collect at a time.
        self._lock = threading.Lock()
        #: Per worker index: its URL and the last families it served (the last good scrape).
        self._last: dict[int, tuple[str, list[Metric]]] = {}
        #: Counter and histogram totals of the workers that left, always added.
        self._retired_families: dict[str, Metric] = {}
        self._retired: Sums = {}

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            families, sums = self._gather()
        for name, family in families.items():
            out = Metric(family.name, family.documentation, family.type, family.unit)
            for (sample_name, labels), value in sums[name].items():
                out.add_sample(sample_name, dict(labels), value)
            yield out

    def refresh(self) -> None:
        """Scrape every live worker now and keep its families (what a later kill keeps)."""
        with self._lock:
            urls = self._urls()
            self._retire_left(urls)
            for index, url in sorted(urls.items()):
                self._scrape(index, url)

    def _gather(self) -> tuple[dict[str, Metric], Sums]:
        families: dict[str, Metric] = {}
        sums: Sums = {}
        urls = self._urls()
        self._retire_left(urls)
        for index, url in sorted(urls.items()):
            for family in self._scrape(index, url):
                _add(families, sums, family, str(index))
        for collector in self._own:
            for family in collector.collect():
                _add(families, sums, family, "supervisor")
        for name, family in self._retired_families.items():
            families.setdefault(name, family)
            totals = sums.setdefault(name, {})
            for key, value in self._retired[name].items():
                totals[key] = totals.get(key, 0.0) + value
        return families, sums

    def _scrape(self, index: int, url: str) -> list[Metric]:
        """The worker's families now, or its last good counters when this scrape failed."""
        parsed = _parse(_fetch(url), url)
        if parsed is not None:
            self._last[index] = (url, parsed)
            return parsed
        _, last = self._last.get(index, (url, []))
        return [family for family in last if family.type in _CARRIED_TYPES]

    def _retire_left(self, urls: dict[int, str]) -> None:
        """Fold the last counters of every worker no longer at its URL into the retired sums."""
        for index, (url, last) in list(self._last.items()):
            if urls.get(index) == url:
                continue
            del self._last[index]
            for family in last:
                if family.type not in _CARRIED_TYPES or _per_process(family):
                    continue
                self._retired_families.setdefault(family.name, family)
                totals = self._retired.setdefault(family.name, {})
                for sample in family.samples:
                    if sample.name.endswith("_created"):
                        continue  # a timestamp, not a count
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    totals[key] = totals.get(key, 0.0) + sample.value


def _per_process(family: Metric) -> bool:
    return family.name.startswith(_PER_PROCESS_PREFIXES)


def _add(families: dict[str, Metric], sums: Sums, family: Metric, worker: str) -> None:
    per_process = _per_process(family)
    families.setdefault(family.name, family)
    totals = sums.setdefault(family.name, {})
    for sample in family.samples:
        labels = dict(sample.labels)
        if per_process:
            labels["worker"] = worker
        key = (sample.name, tuple(sorted(labels.items())))
        totals[key] = totals.get(key, 0.0) + sample.value


def _parse(text: str | None, url: str) -> list[Metric] | None:
    if text is None:
        return None
    try:
        return list(text_string_to_metric_families(text))
    except ValueError as exc:
        log.warning("worker metrics at %s could not be parsed: %s", url, exc)
        return None


def _fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=_SCRAPE_TIMEOUT) as reply:
            return str(reply.read().decode("utf-8"))
    except (urllib.error.URLError, OSError) as exc:
        # A worker that is restarting: its share is missing from this one scrape.
        log.warning("scraping worker metrics at %s failed: %s", url, exc)
        return None


def supervisor_registry(
    urls: Callable[[], dict[int, str]],
) -> tuple[CollectorRegistry, WorkersCollector]:
    registry = CollectorRegistry(auto_describe=False)
    collector = WorkersCollector(urls)
    registry.register(collector)
    return registry, collector
