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
supervisor's own as ``worker="supervisor"``). A worker that died is left out until its
replacement reports; Prometheus sees the drop of its counters as a counter reset.
"""

from __future__ import annotations

import logging
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


class WorkersCollector(Collector):
    """Sums the families the workers at ``urls()`` (index -> metrics URL) serve."""

    def __init__(self, urls: Callable[[], dict[int, str]]) -> None:
        self._urls = urls
        self._own = [ProcessCollector(registry=None), PlatformCollector(registry=None)]

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        sums: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for index, url in sorted(self._urls().items()):
            text = _fetch(url)
            if text is None:
                continue
            for family in text_string_to_metric_families(text):
                _add(families, sums, family, str(index))
        for collector in self._own:
            for family in collector.collect():
                _add(families, sums, family, "supervisor")
        for name, family in families.items():
            out = Metric(family.name, family.documentation, family.type, family.unit)
            for (sample_name, labels), value in sums[name].items():
                out.add_sample(sample_name, dict(labels), value)
            yield out


def _add(
    families: dict[str, Metric],
    sums: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]],
    family: Metric,
    worker: str,
) -> None:
    per_process = family.name.startswith(_PER_PROCESS_PREFIXES)
    families.setdefault(family.name, family)
    totals = sums.setdefault(family.name, {})
    for sample in family.samples:
        labels = dict(sample.labels)
        if per_process:
            labels["worker"] = worker
        key = (sample.name, tuple(sorted(labels.items())))
        totals[key] = totals.get(key, 0.0) + sample.value


def _fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=_SCRAPE_TIMEOUT) as reply:
            return str(reply.read().decode("utf-8"))
    except (urllib.error.URLError, OSError) as exc:
        # A worker that is restarting: its share is missing from this one scrape.
        log.warning("scraping worker metrics at %s failed: %s", url, exc)
        return None


def supervisor_registry(urls: Callable[[], dict[int, str]]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkersCollector(urls))
    return registry
