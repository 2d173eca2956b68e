"""Prometheus metrics of a Server: collectors that read its counters at scrape time, and the
HTTP endpoint that serves them.

Nothing is counted twice: the framework families are read from each RPC's Admission (its
outcome counters and its call-time histograms) and the services' own families from collectors
their Resources contribute (``Resources.collectors()``; the inference service adds Triton's
``nv_inference_*``). Every family is built when Prometheus scrapes, so the call path pays only
for the counters it already keeps.

The endpoint is an aiohttp server on the server's own event loop: no thread per connection (the
stdlib server prometheus-client ships starts one per connection, so a few hundred half-open
connections were hundreds of threads contending with gRPC for the GIL). A connection lives at
most ``CONNECTION_TIMEOUT`` seconds and at most ``MAX_CONNECTIONS`` are open at once (the oldest
are closed first), so idle or half-open connections cost a socket each and then go away. Scrapes
collect on the loop, where the counters live. The supervisor of worker processes, which has no
event loop of its own, runs the same endpoint on one loop thread (``start_in_thread``) and
collects in a worker thread, since its collector scrapes the workers over HTTP.

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

import asyncio
import logging
import socket
import weakref
from collections.abc import Callable, Iterable, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from ._threads import LoopThread
from .admission import Admission, Histogram
from .errors import ConfigError, UsageError

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


#: Seconds a metrics connection may stay open (Prometheus reconnects for the next scrape).
CONNECTION_TIMEOUT = 10.0
#: Metrics connections open at once; beyond it the oldest are closed.
MAX_CONNECTIONS = 64


class MetricsEndpoint:
    """An HTTP server answering GET /metrics from ``registry`` on an event loop."""

    def __init__(self, runner: web.AppRunner, port: int, reaper: asyncio.Task[None]) -> None:
        self._runner = runner
        self._port = port
        self._reaper = reaper
        self._thread: LoopThread | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def start(
        cls, host: str, port: int, registry: Collector, *, collect_in_thread: bool = False
    ) -> MetricsEndpoint:
        """Serve on the running loop (``collect_in_thread``: collect in a worker thread)."""

        async def metrics(request: web.Request) -> web.Response:
            if collect_in_thread:
                body = await asyncio.to_thread(generate_latest, registry)
            else:
                body = generate_latest(registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/", metrics)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            keepalive_timeout=CONNECTION_TIMEOUT,
            shutdown_timeout=0.5,
        )
        try:
            sock = socket.create_server((host, port), family=_family(host))
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror}; choose another "
                "metrics port, or 0 to pick a free one"
            ) from exc
        bound = int(sock.getsockname()[1])
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        reaper = asyncio.get_running_loop().create_task(_reap(runner))
        return cls(runner, bound, reaper)

    @classmethod
    def start_in_thread(cls, host: str, port: int, registry: Collector) -> MetricsEndpoint:
        """Serve on a loop of its own in one daemon thread (for a process without a loop)."""
        thread = LoopThread("asyncinfer-metrics")
        try:
            endpoint = thread.run(cls.start(host, port, registry, collect_in_thread=True), 30)
        except BaseException:
            thread.close(5)
            raise
        endpoint._thread = thread
        return endpoint

    @property
    def port(self) -> int:
        return self._port

    def url(self, host: str) -> str:
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/metrics"

    async def stop(self) -> None:
        tasks = [self._reaper, *self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._runner.cleanup()

    def every(self, seconds: float, work: Callable[[], None]) -> None:
        """Run blocking ``work`` in a worker thread every ``seconds`` while the endpoint of
        ``start_in_thread`` serves (the task belongs to the endpoint and stops with it)."""
        thread = self._thread
        if thread is None:
            raise UsageError("every() is for endpoints made by start_in_thread()")

        async def repeat() -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    await asyncio.to_thread(work)
                except Exception:
                    log.exception("periodic metrics work failed")

        async def schedule() -> None:
            self._tasks.append(asyncio.get_running_loop().create_task(repeat()))

        thread.run(schedule(), 10)

    def stop_thread(self) -> None:
        """Stop an endpoint made by ``start_in_thread``."""
        thread = self._thread
        if thread is None:
            raise UsageError("stop_thread() is for endpoints made by start_in_thread()")
        thread.run(self.stop(), 10)
        thread.close(5)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


async def _reap(runner: web.AppRunner) -> None:
    """Close connections older than CONNECTION_TIMEOUT, and the oldest beyond MAX_CONNECTIONS."""
    first_seen: weakref.WeakKeyDictionary[object, float] = weakref.WeakKeyDictionary()
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(min(1.0, CONNECTION_TIMEOUT / 4))
        server = runner.server
        if server is None:
            continue
        now = loop.time()
        handlers = list(server.connections)
        for handler in handlers:
            first_seen.setdefault(handler, now)
        handlers.sort(key=lambda h: first_seen[h])
        excess = len(handlers) - MAX_CONNECTIONS
        for index, handler in enumerate(handlers):
            if index < excess or now - first_seen[handler] > CONNECTION_TIMEOUT:
                handler.force_close()
                if handler.transport is not None:
                    handler.transport.close()
