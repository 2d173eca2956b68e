"""Regression tests: idle streams do not starve other clients, stream counts are bounded, and a
client that never reads its responses cannot grow the server without bound."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
import pytest

from asyncinfer.client.channel import OWN_CONNECTION
from asyncinfer.pb import ping_pb2
from asyncinfer.pb.inference import grpc_service_pb2 as pb
from asyncinfer.server import Server
from asyncinfer.testing import running

from ...services import build
from ..inference.inference_servers import ThreadedServer

STREAM = "/inference.GRPCInferenceService/ModelStreamInfer"


def _simple_request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="simple", id="active")
    for name in ("INPUT0", "INPUT1"):
        request.inputs.add(name=name, datatype="INT32", shape=[1, 16])
        request.raw_input_contents.append(np.ones(16, np.int32).tobytes())
    return request


async def _idle_streams(channel: grpc.aio.Channel, count: int) -> list[Any]:
    method = channel.stream_stream(
        STREAM,
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelStreamInferResponse.FromString,
    )
    calls = [method() for _ in range(count)]
    for call in calls:
        await call.wait_for_connection()
    return calls


def test_idle_streams_do_not_starve_a_new_stream(
    inference_server: Callable[..., Callable[[], Server]],
) -> None:
    """300 idle ModelStreamInfer streams (the RPC admits 256 at once); a further stream is
    served at once. On main each idle stream held an admission slot, so the 257th waited."""
    with ThreadedServer(inference_server()) as address:

        async def scenario() -> str:
            channels = [grpc.aio.insecure_channel(address, options=OWN_CONNECTION) for _ in (0, 1)]
            try:
                idle: list[Any] = [c for ch in channels for c in await _idle_streams(ch, 150)]
                active = await _idle_streams(channels[0], 1)
                call: Any = active[0]
                await call.write(_simple_request())
                reply = await asyncio.wait_for(call.read(), 10)
                await call.done_writing()
                for each in idle:
                    each.cancel()
                return str(reply.infer_response.id) + reply.error_message
            finally:
                for channel in channels:
                    await channel.close(None)

        assert asyncio.run(scenario()) == "active"


async def test_stream_bounds_per_connection_and_in_total() -> None:
    server = build(max_streams=5, max_streams_per_connection=3)
    async with running(server) as target:
        channels = [grpc.aio.insecure_channel(target, options=OWN_CONNECTION) for _ in (0, 1)]
        try:
            echo = [
                ch.stream_stream(
                    "/asyncinfer.examples.Ping/Echo",
                    request_serializer=ping_pb2.PingRequest.SerializeToString,
                    response_deserializer=ping_pb2.PingReply.FromString,
                )
                for ch in channels
            ]
            first = await _echoing(echo[0], 3, b"x")
            refusal = await _refused(echo[0])
            assert refusal.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_streams_per_connection=3" in str(refusal.details())
            second = await _echoing(echo[1], 2, b"y")
            assert "max_streams=5" in str((await _refused(echo[1])).details())
            for call in (*first, *second):
                await call.done_writing()
                assert await call.read() is grpc.aio.EOF
            await asyncio.sleep(0.1)
            assert server.limits is not None and server.limits.streams.total == 0
            again = echo[0]()  # closed streams give their places back
            await again.write(ping_pb2.PingRequest(payload=b"z"))
            assert (await again.read()).payload == b"z"
            await again.done_writing()
        finally:
            for channel in channels:
                await channel.close(None)


async def _echoing(open_stream: Any, count: int, payload: bytes) -> list[Any]:
    """``count`` open streams, each of which has echoed one request."""
    calls = [open_stream() for _ in range(count)]
    for call in calls:
        await call.write(ping_pb2.PingRequest(payload=payload))
        assert (await call.read()).payload == payload
    return calls


async def _refused(open_stream: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await open_stream().read()
    return refused.value


_READER = textwrap.dedent(
    """
    import sys, time, grpc
    from asyncinfer.pb import ping_pb2
    target, calls = sys.argv[1], int(sys.argv[2])
    channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 1 << 30)])
    ping = channel.unary_unary("/asyncinfer.examples.Ping/Ping",
        request_serializer=ping_pb2.PingRequest.SerializeToString,
        response_deserializer=ping_pb2.PingReply.FromString)
    futures = [ping.future(ping_pb2.PingRequest(payload=b"big"), timeout=60) for _ in range(calls)]
    time.sleep(0.5)  # the requests are on the wire; the server answers after 1 s
    print("sent", flush=True)
    outcomes = {}
    for f in futures:
        try:
            f.result()
            outcomes["OK"] = outcomes.get("OK", 0) + 1
        except grpc.RpcError as exc:
            outcomes[exc.code().name] = outcomes.get(exc.code().name, 0) + 1
    print(sorted(outcomes.items()), flush=True)
    """
)


def test_a_client_that_never_reads_holds_bounded_memory() -> None:
    """A client sends 40 calls with 4 MiB replies and stops reading (SIGSTOP). The server
    holds at most 16 MiB of unsent replies for that connection; the calls beyond it are
    RESOURCE_EXHAUSTED, and once the client reads again it gets the rest. On main every reply
    (160 MiB) was held."""
    from ...services import Ping, TrackedResources

    class BigPing(Ping):
        async def execute(self, request: ping_pb2.PingRequest) -> ping_pb2.PingReply:
            await asyncio.sleep(1.0)  # the client is stopped by then
            return ping_pb2.PingReply(payload=bytes(4 << 20))

    server = Server(
        max_unsent_reply_bytes_per_connection=16 << 20,
        max_send_message_bytes=8 << 20,
    )
    server.add_service(TrackedResources(), BigPing)
    with ThreadedServer(lambda: server) as address:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        client = subprocess.Popen(
            [sys.executable, "-c", _READER, address, "40"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert client.stdout is not None
            assert client.stdout.readline().strip() == "sent"
            client.send_signal(signal.SIGSTOP)
            held = 0
            for _ in range(200):  # until the server has answered every call it will answer
                stats = server.statistics().rpcs["/asyncinfer.examples.Ping/Ping"]
                held = server.limits.unsent_replies.total if server.limits else -1
                if stats.completed + stats.failed == 40:
                    break
                time.sleep(0.05)
            assert 0 < held <= 16 << 20
            assert server.limits is not None and server.limits.unsent_replies.refused > 0
            client.send_signal(signal.SIGCONT)
            out, _ = client.communicate(timeout=60)
        finally:
            if client.poll() is None:
                client.send_signal(signal.SIGCONT)
                client.kill()
                client.wait()
    assert "RESOURCE_EXHAUSTED" in out and "('OK'," in out, out
    assert server.limits.unsent_replies.total == 0  # every sent reply gave its bytes back
