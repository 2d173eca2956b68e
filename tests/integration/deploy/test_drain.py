"""Graceful drain, what a rolling restart relies on: on SIGTERM a server reports NOT_SERVING to
health watchers (the readiness probe), refuses new connections, finishes the calls it has, cancels
what outlives its grace, and exits 0 within that grace."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from asyncinfer.client import AsyncClient, Method
from asyncinfer.errors import RpcError, Unavailable
from asyncinfer.pb import ping_pb2
from asyncinfer.pb.ping_pb2 import PingRequest
from asyncinfer.testing import ServerProcess

PING_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "01_ping"
PING = Method.of(ping_pb2.DESCRIPTOR.services_by_name["Ping"].methods_by_name["Ping"])
GRACE = 2.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _watch(address: str, statuses: list[int]) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        try:
            async for reply in stream:
                statuses.append(reply.status)
        except grpc.aio.AioRpcError:
            pass  # the stream ends when the server goes


async def _ended_by(call: asyncio.Task[object]) -> str:
    try:
        await call
    except RpcError as exc:
        return type(exc).__name__
    return "ok"


@pytest.mark.timeout(60)
async def test_sigterm_drains_within_grace() -> None:
    argv = [sys.executable, "-m", "asyncinfer.cli", "serve", "--app", "server:build",
            "--port", "0", "--grace", str(GRACE)]  # fmt: skip
    with ServerProcess(argv, cwd=str(PING_EXAMPLE)) as server:
        statuses: list[int] = []
        watcher = asyncio.create_task(_watch(server.address, statuses))
        async with AsyncClient(server.address, PING, timeout=30) as client:
            short = [asyncio.create_task(client.call(PingRequest(delay_us=1_200_000)))
                     for _ in range(4)]  # fmt: skip
            too_long = asyncio.create_task(client.call(PingRequest(delay_us=20_000_000)))
            await asyncio.sleep(0.5)  # every call is in the server now
            assert statuses == [SERVING]
            stopped_at = time.monotonic()
            os.kill(server.pid, signal.SIGTERM)
            await asyncio.sleep(0.3)
            # New connections are refused while the old one still carries the calls in flight.
            async with AsyncClient(server.address, PING, timeout=2) as newcomer:
                with pytest.raises(Unavailable):
                    await newcomer.call(PingRequest())
            assert [await _ended_by(call) for call in short] == ["ok"] * 4
            ended = await _ended_by(too_long)
        async with asyncio.timeout(GRACE + 10):
            while server.returncode is None:  # noqa: ASYNC110 (a child process, not an event)
                await asyncio.sleep(0.05)
        exited_after = time.monotonic() - stopped_at
        code = server.returncode
        await watcher
    assert statuses[:2] == [SERVING, NOT_SERVING]  # readiness goes NOT_SERVING while draining
    assert ended in ("Cancelled", "Unavailable")  # the call longer than the grace was ended
    assert code == 0
    assert exited_after < GRACE + 5.0, exited_after  # the grace, and a margin for a busy machine
