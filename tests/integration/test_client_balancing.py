"""Client-side load balancing: our clients given several servers (or a dns:/// name) spread
their calls over all of them with gRPC's round_robin, and carry on when one dies."""

from __future__ import annotations

import collections
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncinfer.client import AsyncClient, ChannelPool, Constant, Method, Siege, SyncClient
from asyncinfer.errors import RpcError
from asyncinfer.pb import ping_pb2
from asyncinfer.pb.ping_pb2 import PingRequest
from asyncinfer.testing import ServerProcess

PING_SERVER = Path(__file__).parents[2] / "examples" / "01_ping" / "server.py"
PING = Method.of(ping_pb2.DESCRIPTOR.services_by_name["Ping"].methods_by_name["Ping"])


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    """Three ping servers, each its own process (a reply names the pid that answered)."""
    processes = [ServerProcess([sys.executable, str(PING_SERVER), "--port", "0"]) for _ in range(3)]
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        for process in processes:
            process.stop()


def _pids(replies: list[ping_pb2.PingReply]) -> collections.Counter[int]:
    return collections.Counter(reply.pid for reply in replies)


async def _calls(client: AsyncClient, count: int) -> tuple[list[ping_pb2.PingReply], int]:
    replies, failed = [], 0
    for _ in range(count):
        try:
            replies.append(await client.call(PingRequest(payload=b"x")))
        except RpcError:
            failed += 1
    return replies, failed


async def test_async_client_spreads_over_three_and_carries_on_when_one_dies(
    servers: list[ServerProcess],
) -> None:
    pids = {server.pid for server in servers}
    async with AsyncClient([s.address for s in servers], PING, timeout=5) as client:
        await _calls(client, 10)  # connects every subchannel
        replies, failed = await _calls(client, 90)
        assert failed == 0
        spread = _pids(replies)
        assert set(spread) == pids, spread
        assert min(spread.values()) >= 20, spread  # round_robin: about 30 each

        os.kill(servers[1].pid, signal.SIGKILL)
        servers[1].stop()  # reaps it
        replies, failed = await _calls(client, 60)
    # A call picked just as the connection broke may fail; everything after it goes on.
    assert failed <= 1
    assert set(_pids(replies)) == pids - {servers[1].pid}
    assert len(replies) >= 59


def test_sync_client_round_robins(servers: list[ServerProcess]) -> None:
    targets = ",".join(s.address for s in servers)  # the CLI's comma-separated form
    with SyncClient(targets, PING, timeout=5) as client:
        for _ in range(10):
            client.call(PingRequest())
        spread = _pids([client.call(PingRequest()) for _ in range(60)])
    assert set(spread) == {s.pid for s in servers} and min(spread.values()) >= 10, spread


async def test_siege_over_several_targets(servers: list[ServerProcess]) -> None:
    async with AsyncClient([s.address for s in servers], PING, timeout=5) as client:
        await _calls(client, 10)
        siege = Siege(client, Constant(300), duration=1.0, on_progress=None)
        result = await siege.run(PingRequest(payload=b"s"))
    assert result.report.ok == result.report.calls > 250


async def test_a_dns_name_is_resolved_and_balanced(servers: list[ServerProcess]) -> None:
    # localhost may resolve to ::1 as well, where nothing listens: round_robin skips it.
    port = servers[0].address.rpartition(":")[2]
    async with AsyncClient(f"dns:///localhost:{port}", PING, timeout=5) as client:
        replies, failed = await _calls(client, 20)
    assert failed == 0 and set(_pids(replies)) == {servers[0].pid}


async def test_a_channel_pool_balances_each_of_its_channels(servers: list[ServerProcess]) -> None:
    async with ChannelPool([s.address for s in servers], size=2) as pool:
        for _ in range(10):
            await pool.call(PING, PingRequest())
        replies = [await pool.call(PING, PingRequest()) for _ in range(60)]
    spread = _pids(replies)
    assert set(spread) == {s.pid for s in servers} and min(spread.values()) >= 10, spread
