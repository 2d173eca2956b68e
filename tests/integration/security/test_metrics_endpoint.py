"""Regression tests: the metrics endpoint serves on the event loop with bounded connections, so
hundreds of half-open connections neither start threads nor stall gRPC; --metrics-address."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import urllib.request

import grpc
import pytest

from asyncinfer import metrics
from asyncinfer.pb import ping_pb2, ping_pb2_grpc
from asyncinfer.testing import ServerProcess, running

from ...services import build


def _half_open(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /metr")  # and never the rest
        sockets.append(sock)
    return sockets


async def test_half_open_metrics_connections_start_no_threads_and_do_not_stall_grpc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """300 half-open connections: on main each held a thread of the server process (and gRPC
    stalled for seconds); now no thread is started, gRPC answers, a scrape still works, and
    the connections are closed once CONNECTION_TIMEOUT passes."""
    monkeypatch.setattr(metrics, "CONNECTION_TIMEOUT", 1.0)
    monkeypatch.setattr(metrics, "MAX_CONNECTIONS", 400)
    server = build(metrics_port=0)
    async with running(server) as target:
        assert server.metrics_url is not None
        port = int(server.metrics_url.rsplit(":", 1)[1].split("/")[0])
        threads = threading.active_count()
        sockets = await asyncio.to_thread(_half_open, port, 300)
        try:
            await asyncio.sleep(0.2)
            assert threading.active_count() <= threads + 2
            async with grpc.aio.insecure_channel(target) as channel:
                stub = ping_pb2_grpc.PingStub(channel)
                for _ in range(20):
                    reply = await stub.Ping(ping_pb2.PingRequest(payload=b"x"), timeout=5)
                    assert reply.payload == b"x"
            body = await asyncio.to_thread(
                lambda: urllib.request.urlopen(server.metrics_url, timeout=10).read()
            )
            assert b"asyncinfer_rpc_calls_total" in body
            await asyncio.sleep(2.5)  # past the connection timeout: the server closed them
            closed = await asyncio.to_thread(lambda: sum(_closed(s) for s in sockets))
            assert closed == len(sockets)
        finally:
            for sock in sockets:
                sock.close()


def _closed(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except OSError:
        return True


async def test_excess_metrics_connections_are_closed_oldest_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics, "MAX_CONNECTIONS", 10)
    server = build(metrics_port=0)
    async with running(server):
        assert server.metrics_url is not None
        port = int(server.metrics_url.rsplit(":", 1)[1].split("/")[0])
        sockets = await asyncio.to_thread(_half_open, port, 30)
        try:
            await asyncio.sleep(1.5)
            first = await asyncio.to_thread(lambda: sum(_closed(s) for s in sockets[:20]))
            assert first == 20
        finally:
            for sock in sockets:
                sock.close()


def test_metrics_address_keeps_metrics_apart_from_grpc() -> None:
    """gRPC on one address, metrics on another (here two loopback addresses; in a container
    --host 0.0.0.0 --metrics-address 127.0.0.1 keeps metrics off the network)."""
    argv = [
        sys.executable, "-m", "asyncinfer.cli", "serve", "--app", "examples.01_ping.server:build",
        "--host", "127.0.0.2", "--port", "0", "--metrics-port", "0",
        "--metrics-address", "127.0.0.1",
    ]  # fmt: skip
    with ServerProcess(argv) as proc:
        assert proc.address.startswith("127.0.0.2:")
        assert proc.metrics_url.startswith("http://127.0.0.1:")
        assert b"asyncinfer_rpc" in urllib.request.urlopen(proc.metrics_url, timeout=10).read()
