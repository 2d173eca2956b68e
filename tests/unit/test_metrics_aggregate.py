"""The supervisor's summed worker metrics, scraped from real Prometheus endpoints on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from asyncinfer._metrics_aggregate import WorkersCollector


class Worker:
    """A worker's own metrics endpoint: a counter and a gauge on a free loopback port."""

    def __init__(self, count: int, busy: int = 0) -> None:
        registry = CollectorRegistry()
        self.requests = Counter("demo_requests", "requests", registry=registry)
        self.requests.inc(count)
        Gauge("demo_busy", "busy", registry=registry).set(busy)
        self._server, self._thread = start_http_server(0, addr="127.0.0.1", registry=registry)
        self.url = f"http://127.0.0.1:{self._server.server_port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.close()


def sample(collector: WorkersCollector, name: str) -> float | None:
    values: dict[str, Any] = {
        s.name: s.value for family in collector.collect() for s in family.samples
    }
    return values.get(name)


def test_summed_counters_never_go_backwards_when_workers_fail_or_are_replaced(
    workers: list[Worker],
) -> None:
    workers += [Worker(3, busy=5), Worker(4, busy=2)]
    urls = {0: workers[0].url, 1: workers[1].url}
    collector = WorkersCollector(lambda: dict(urls))
    assert sample(collector, "demo_requests_total") == 7
    assert sample(collector, "demo_busy") == 7

    workers[1].close()  # its scrape fails: its last counters still count, its gauge does not
    assert sample(collector, "demo_requests_total") == 7
    assert sample(collector, "demo_busy") == 5

    del urls[1]  # it died: its counters are retired, not dropped
    assert sample(collector, "demo_requests_total") == 7

    workers.append(Worker(1))  # its replacement starts from zero
    urls[1] = workers[2].url
    assert sample(collector, "demo_requests_total") == 8
    workers[0].requests.inc(2)
    assert sample(collector, "demo_requests_total") == 10


def test_a_replacement_at_the_same_index_retires_the_old_worker(workers: list[Worker]) -> None:
    workers += [Worker(6), Worker(2)]
    urls = {0: workers[0].url}
    collector = WorkersCollector(lambda: dict(urls))
    assert sample(collector, "demo_requests_total") == 6
    urls[0] = workers[1].url  # replaced between two scrapes
    assert sample(collector, "demo_requests_total") == 8
