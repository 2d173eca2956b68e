"""The process model: workers on one port, a supervisor that restarts the dead, graceful stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from asyncinfer.affinity import cpus_for_worker, read_topology
from asyncinfer.client import AsyncClient, Constant, Method, Siege
from asyncinfer.client.channel import OWN_CONNECTION
from asyncinfer.testing import ServerProcess
from tests.protos import ping_pb2

SERVER = Path(__file__).parents[2] / "examples" / "01_ping" / "server.py"
PING = Method.of(ping_pb2.DESCRIPTOR.services_by_name["Ping"].methods_by_name["Ping"])


def _workers(n: int, *flags: str) -> ServerProcess:
    argv = [sys.executable, str(SERVER), "--port", "0", "--workers", str(n), *flags]
    return ServerProcess(argv, workers=n)


async def test_two_workers_share_one_port_and_both_answer() -> None:
    with _workers(2) as proc:
        async with (
            AsyncClient(proc.address, PING, options=OWN_CONNECTION) as first,
            AsyncClient(proc.address, PING, options=OWN_CONNECTION) as _,
        ):
            pids = set()
            for _attempt in range(50):  # SO_REUSEPORT spreads new connections over workers
                channel_client = AsyncClient(proc.address, PING, options=OWN_CONNECTION)
                async with channel_client:
                    reply = await channel_client.call(ping_pb2.PingRequest(payload=b"x"))
                pids.add(reply.pid)
                if pids == set(proc.worker_pids.values()):
                    break
            assert pids == set(proc.worker_pids.values())
            assert (await first.call(ping_pb2.PingRequest())).pid in pids
        assert proc.stop() == 0


async def test_a_worker_killed_during_a_siege_is_restarted_and_calls_succeed_after() -> None:
    with _workers(2) as proc:
        victim = proc.worker_pids[0]
        async with AsyncClient(proc.address, PING, timeout=2.0) as client:
            siege = Siege(client, Constant(300), duration=4.0, on_progress=None)
            running = asyncio.create_task(siege.run(ping_pb2.PingRequest(payload=b"s")))
            await asyncio.sleep(1.0)
            os.kill(victim, signal.SIGKILL)
            await asyncio.to_thread(
                proc.wait_for, lambda: proc.worker_pids[0] != victim, "worker 0 restarted", 15
            )
            result = await running
            assert any("exited with code -9; restarting" in line for line in proc.lines)
            # Calls succeed after the restart: the last windows of the siege are all successes.
            assert result.report.ok > 0
            assert sum(w.ok for w in result.timeline[-3:]) > 0
            assert all(w.failed == 0 for w in result.timeline[-3:])
            # The new worker answers too.
            replies = set()
            for _attempt in range(50):
                async with AsyncClient(proc.address, PING, options=OWN_CONNECTION) as fresh:
                    replies.add((await fresh.call(ping_pb2.PingRequest())).pid)
                if proc.worker_pids[0] in replies:
                    break
            assert proc.worker_pids[0] in replies
        assert proc.stop() == 0


def test_sigterm_drains_and_exits_zero() -> None:
    with _workers(2) as proc:
        pids = list(proc.worker_pids.values())
        assert proc.stop() == 0
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )


def test_pinned_workers_run_on_their_numa_nodes_cpus() -> None:
    topology = read_topology()
    with _workers(2, "--pin-workers") as proc:
        for index, pid in proc.worker_pids.items():
            assert os.sched_getaffinity(pid) == set(cpus_for_worker(index, 2, topology))
        assert proc.stop() == 0
