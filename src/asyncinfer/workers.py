"""The process model: one event loop per process, N worker processes on one port, a supervisor.

``serve(factory)`` builds a Server with ``factory()`` and runs it until SIGTERM or SIGINT, then
drains it. With ``workers > 1`` (config), the calling process becomes a supervisor: it reserves
the port, spawns N workers that each call ``factory()`` and bind the same port through
SO_REUSEPORT, restarts a worker that dies, and on SIGTERM/SIGINT asks every worker to drain and
waits for them (``grace`` plus a margin) before killing what is left.

Liveness: each worker's event loop sends a heartbeat to the supervisor every quarter of
``liveness_timeout``. A worker whose heartbeats stop for ``liveness_timeout`` seconds while its
process is alive (stopped with SIGSTOP, or its loop blocked) would keep taking its share of new
connections and answer none: the supervisor kills it (SIGKILL) and starts a new one.

The factory must be picklable (a module-level function or a functools.partial of one): workers
are started with the "spawn" method so that no gRPC or event-loop state crosses a fork.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from . import logs
from ._metrics_aggregate import supervisor_registry
from .affinity import CpuSet, cpus_for_worker, pin_process, read_topology
from .config import ServerConfig
from .memory.host_heap import tune_host_heap
from .metrics import MetricsEndpoint
from .server import Server

__all__ = ["run_loop", "serve"]

log = logging.getLogger("asyncinfer.workers")

ServerFactory = Callable[[], Server]
T = TypeVar("T")
#: A worker that dies sooner than this after its start counts as crashing; restarts back off.
_HEALTHY_AFTER = 5.0
_MAX_BACKOFF = 5.0


def serve(factory: ServerFactory) -> int:
    """Run the server ``factory`` builds, in this process or as a supervisor of workers.

    Returns the exit code: 0 after a graceful stop.
    """
    config = factory().config
    if config.workers == 1:
        return run_loop(_serve_one(factory, config.port, announce=_print_ready), config.loop)
    return Supervisor(factory, config).run()


def run_loop(main: Coroutine[Any, Any, T], loop: str = "auto") -> T:
    """Run a coroutine on uvloop when installed (and allowed), else on asyncio's loop."""
    with asyncio.Runner(loop_factory=_loop_factory(loop)) as runner:
        return runner.run(main)


def _loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if loop == "uvloop":
            raise
        return None
    return uvloop.new_event_loop


def _print_ready(
    index: int | None, address: str, metrics_url: str | None = None, pid: int | None = None
) -> None:
    """The line tools and tests wait for: who serves, and where (metrics: a line of its own)."""
    if metrics_url is not None and index is None:
        _print_metrics(metrics_url)  # first: whoever waits for "serving" may scrape at once
    who = "" if index is None else f"worker {index} "
    print(f"asyncinfer: {who}(pid {pid or os.getpid()}) serving on {address}", flush=True)


def _print_metrics(url: str) -> None:
    print(f"asyncinfer: metrics on {url}", flush=True)


async def _serve_one(
    factory: ServerFactory,
    port: int,
    *,
    announce: Callable[[int | None, str, str | None], None],
    index: int | None = None,
    heartbeat: Callable[[], None] | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT, then stop gracefully."""
    # A process that serves reuses large messages' heap blocks (memory.host_heap), whatever
    # its services are: the page faults of fresh blocks cost custom services moving MiB-sized
    # messages as much as inference servers.
    tune_host_heap()
    server = factory()
    if port != server.config.port:
        server.config = dataclasses.replace(server.config, port=port)
    if index is not None and server.config.metrics_port is not None:
        # The supervisor serves the configured metrics port; a worker's own endpoint, on a
        # free port, is what the supervisor scrapes and sums.
        server.config = dataclasses.replace(server.config, metrics_port=0, metrics_host="127.0.0.1")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    if index is None:
        for front_end in server.front_ends:  # before "serving": whoever waits may call at once
            print(f"asyncinfer: {front_end.name} on {front_end.url}", flush=True)
    announce(index, server.address, server.metrics_url)
    async with asyncio.TaskGroup() as tasks:
        if heartbeat is not None:
            beats = tasks.create_task(_beat(heartbeat, server.config.liveness_timeout / 4))
        await stop.wait()
        if heartbeat is not None:
            beats.cancel()
    await server.stop()
    return 0


async def _beat(heartbeat: Callable[[], None], interval: float) -> None:
    """Tell the supervisor this worker's loop runs, every ``interval`` seconds."""
    while True:
        heartbeat()
        await asyncio.sleep(interval)


def _worker_main(
    factory: ServerFactory,
    index: int,
    port: int,
    ready: Any,
    cpus: CpuSet | None,
    log_settings: dict[str, Any] | None = None,
) -> None:
    """Entry point of a worker process."""

    def announce(index: int | None, address: str, metrics_url: str | None) -> None:
        ready.send((index, os.getpid(), address, metrics_url))

    def heartbeat() -> None:
        ready.send((index, os.getpid()))  # a few bytes: one atomic write to the pipe

    if log_settings is not None:
        logs.configure(**log_settings)
    _exit_with_parent()
    if cpus is not None:
        # Before the server exists, so that gRPC's and the pools' threads inherit the mask.
        pin_process(cpus)
    config = factory().config
    main = _serve_one(factory, port, announce=announce, index=index, heartbeat=heartbeat)
    sys.exit(run_loop(main, config.loop))


def _exit_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when the supervisor dies, so no orphan keeps the port."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() == 1:  # the supervisor died before prctl took effect
        sys.exit(0)


@dataclasses.dataclass
class _Worker:
    index: int
    process: BaseProcess
    started: float
    crashes: int = 0
    #: When the supervisor last heard from this worker (its ready line or a heartbeat).
    seen: float = 0.0
    #: It announced it serves; only then is its liveness checked (loading may take long).
    ready: bool = False


class Supervisor:
    """Starts ``config.workers`` processes on one port, restarts the dead, drains on signal."""

    def __init__(self, factory: ServerFactory, config: ServerConfig) -> None:
        self.factory = factory
        self.config = config
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, _Worker] = {}
        self._stopping = False
        self._ready_recv, self._ready_send = self._context.Pipe(duplex=False)
        self._cpus: list[CpuSet | None] = [None] * config.workers
        #: Worker index -> its own metrics URL, for the workers alive now.
        self._metrics_urls: dict[int, str] = {}

    def run(self) -> int:
        metrics = self._start_metrics()  # first: a taken metrics port stops us before workers
        try:
            reservation, port = _reserve_port(self.config)
        except BaseException:
            if metrics is not None:
                metrics.stop_thread()
            raise
        if self.config.pin_workers:
            topology = read_topology()
            self._cpus = [
                cpus_for_worker(i, self.config.workers, topology)
                for i in range(self.config.workers)
            ]
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self.config.workers):
                self._start(index, port, crashes=0)
            self._supervise(port)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._drain()
            if reservation is not None:
                reservation.close()
            if metrics is not None:
                metrics.stop_thread()
        return 0

    def _start_metrics(self) -> MetricsEndpoint | None:
        if self.config.metrics_port is None:
            return None
        # dict(): the endpoint's thread reads it while the supervise loop updates it.
        registry, collector = supervisor_registry(lambda: dict(self._metrics_urls))
        host = self.config.metrics_host or self.config.host
        endpoint = MetricsEndpoint.start_in_thread(host, self.config.metrics_port, registry)
        # Keep every worker's latest counts, so a worker killed between two Prometheus scrapes
        # loses at most about a second of them.
        endpoint.every(min(1.0, self.config.liveness_timeout / 4), collector.refresh)
        _print_metrics(endpoint.url(host))
        return endpoint

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True

    def _start(self, index: int, port: int, *, crashes: int) -> None:
        process = self._context.Process(
            target=_worker_main,
            args=(
                self.factory,
                index,
                port,
                self._ready_send,
                self._cpus[index],
                logs.settings(),
            ),
            name=f"asyncinfer-worker-{index}",
        )
        process.start()
        now = time.monotonic()
        self._workers[index] = _Worker(index, process, now, crashes, seen=now)

    def _supervise(self, port: int) -> None:
        restart_at: dict[int, float] = {}
        while not self._stopping:
            sentinels = [w.process.sentinel for w in self._workers.values() if w.process.is_alive()]
            multiprocessing.connection.wait([*sentinels, self._ready_recv], timeout=0.2)
            self._read_messages()
            now = time.monotonic()
            self._kill_hung(now)
            for worker in list(self._workers.values()):
                if worker.process.is_alive() or self._stopping:
                    continue
                self._metrics_urls.pop(worker.index, None)
                if worker.index not in restart_at:
                    restart_at[worker.index] = now + self._backoff(worker, now)
                elif now >= restart_at.pop(worker.index):
                    crashes = worker.crashes + 1 if now - worker.started < _HEALTHY_AFTER else 0
                    self._start(worker.index, port, crashes=crashes)

    def _read_messages(self) -> None:
        """Ready lines and heartbeats from the workers."""
        while self._ready_recv.poll():
            message = self._ready_recv.recv()
            index, pid = message[0], message[1]
            worker = self._workers.get(index)
            if worker is not None and worker.process.pid == pid:
                worker.seen = time.monotonic()
            if len(message) == 4:  # the ready line: (index, pid, address, metrics_url)
                _, _, address, metrics_url = message
                if worker is not None and worker.process.pid == pid:
                    worker.ready = True
                if metrics_url is not None:
                    self._metrics_urls[index] = metrics_url
                _print_ready(index, address, pid=pid)

    def _kill_hung(self, now: float) -> None:
        """SIGKILL a serving worker silent for liveness_timeout; the dead-worker path replaces
        it. A worker still starting (loading models) is not checked until it is ready."""
        for worker in self._workers.values():
            silent = now - worker.seen
            if worker.ready and worker.process.is_alive() and silent > self.config.liveness_timeout:
                print(
                    f"asyncinfer: worker {worker.index} (pid {worker.process.pid}) sent no "
                    f"heartbeat for {silent:.1f}s (liveness_timeout "
                    f"{self.config.liveness_timeout:g}s); killing it",
                    file=sys.stderr,
                    flush=True,
                )
                worker.process.kill()
                worker.seen = now  # once; it is restarted once its exit is seen

    def _backoff(self, worker: _Worker, now: float) -> float:
        code = worker.process.exitcode
        quick = now - worker.started < _HEALTHY_AFTER
        delay = min(_MAX_BACKOFF, 0.1 * 2**worker.crashes) if quick else 0.0
        print(
            f"asyncinfer: worker {worker.index} (pid {worker.process.pid}) "
            f"exited with code {code}; "
            f"restarting in {delay:.1f}s",
            file=sys.stderr,
            flush=True,
        )
        return delay

    def _drain(self) -> None:
        """Ask every worker to stop gracefully; kill those still alive after grace + margin."""
        alive = [w.process for w in self._workers.values() if w.process.is_alive()]
        for process in alive:
            if process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.grace + 5.0
        for process in alive:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker pid %s did not stop in time; killing it", process.pid)
                process.kill()
                process.join()


def _reserve_port(config: ServerConfig) -> tuple[socket.socket | None, int]:
    """Bind (without listening) a SO_REUSEPORT socket so that port 0 becomes one port for all
    workers; the socket takes no connections, it only keeps the port ours while workers restart.
    Without gRPC there is no port to reserve (the HTTP port is a fixed one; app.build_server)."""
    if not config.serve_grpc:
        return None, config.port
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((config.host, config.port))
    return sock, int(sock.getsockname()[1])
