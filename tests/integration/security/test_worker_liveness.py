"""Regression tests: a hung (SIGSTOPped) worker is detected by its missing heartbeats and
replaced; a killed worker's calls stay in the summed metrics."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from asyncinfer.client import AsyncClient, Method
from asyncinfer.client.channel import OWN_CONNECTION
from asyncinfer.pb import ping_pb2
from asyncinfer.testing import ServerProcess

PING = Method.of(ping_pb2.DESCRIPTOR.services_by_name["Ping"].methods_by_name["Ping"])


def _serve(*flags: str) -> ServerProcess:
    argv = [
        sys.executable, "-m", "asyncinfer.cli", "serve", "--app", "examples.01_ping.server:build",
        "--port", "0", "--workers", "2", *flags,
    ]  # fmt: skip
    return ServerProcess(argv, workers=2, timeout=60)


async def _ping_both(proc: ServerProcess, calls: int) -> set[int]:
    pids = set()
    for _ in range(calls):  # fresh connections: SO_REUSEPORT spreads them over the workers
        async with AsyncClient(proc.address, PING, options=OWN_CONNECTION, timeout=5) as client:
            pids.add((await client.call(ping_pb2.PingRequest(payload=b"x"))).pid)
    return pids


async def test_a_stopped_worker_is_replaced() -> None:
    """On main a SIGSTOPped worker stayed in place and kept receiving half of the new
    connections, answering none of them."""
    with _serve("--liveness-timeout", "1.5") as proc:
        stopped = proc.worker_pids[0]
        os.kill(stopped, signal.SIGSTOP)
        try:
            proc.wait_for(lambda: proc.worker_pids[0] != stopped, "a new worker 0", timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(stopped, signal.SIGCONT)
        assert any("sent no heartbeat" in line for line in proc.lines)
        pids = await _ping_both(proc, 30)
        assert stopped not in pids and pids <= set(proc.worker_pids.values())
        assert proc.stop() == 0


async def test_a_killed_workers_calls_stay_in_the_summed_metrics() -> None:
    with _serve("--metrics-port", "0") as proc:
        calls = 30
        pids = await _ping_both(proc, calls)
        assert len(pids) == 2  # both workers served some
        await asyncio.sleep(2.5)  # the supervisor refreshes its copy of every worker's counts
        victim = proc.worker_pids[0]
        os.kill(victim, signal.SIGKILL)  # before any Prometheus scrape
        proc.wait_for(lambda: proc.worker_pids[0] != victim, "a new worker 0", timeout=30)
        deadline = time.monotonic() + 10
        completed = 0.0
        while time.monotonic() < deadline:
            text = await asyncio.to_thread(
                lambda: urllib.request.urlopen(proc.metrics_url, timeout=10).read().decode()
            )
            completed = sum(
                s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
                if s.name == "asyncinfer_rpc_calls_total"
                and s.labels.get("method") == "Ping"
                and s.labels.get("outcome") == "completed"
            )
            if completed == calls:
                break
            await asyncio.sleep(0.5)
        assert completed == calls
        assert proc.stop() == 0
