"""The overload scenario's recovery measure (bench/_reliability.py ``_recovery``) against an
in-process server whose answers are scripted: it reports a healthy server at once, and a
server still slow, failing or stalled as not recovered for as long as it is."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from .._bench import reliability

#: A slow answer: far beyond twice any loopback baseline, even on a loaded machine.
SLOW_S = 0.2


class Scripted:
    """How the server answers the call starting ``elapsed`` seconds after ``begin``."""

    def __init__(self) -> None:
        self.begin = time.monotonic()
        self.calls = 0
        self.behaviour: Callable[[float, int], str] = lambda elapsed, index: "ok"

    def script(self, behaviour: Callable[[float, int], str]) -> None:
        self.begin, self.calls, self.behaviour = time.monotonic(), 0, behaviour

    async def infer(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        self.calls += 1
        what = self.behaviour(time.monotonic() - self.begin, self.calls)
        if what == "slow":
            await asyncio.sleep(SLOW_S)
        elif what == "fail":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "scripted failure")
        elif what == "stall":
            await asyncio.Event().wait()  # until the client's deadline cancels the call
        return b""


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[str, Scripted]]:
    state = Scripted()
    handler = grpc.unary_unary_rpc_method_handler(
        state.infer, request_deserializer=None, response_serializer=None
    )
    service, method = reliability.INFER.lstrip("/").split("/")
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service, {method: handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", state
    finally:
        await server.stop(None)


async def baseline(address: str) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        return await reliability._latency(
            reliability._infer_call(channel), b"", 30, reliability.PROBE_PAUSE_S
        )


async def test_a_healthy_server_is_recovered_at_once(scripted: tuple[str, Scripted]) -> None:
    address, state = scripted
    base = await baseline(address)
    recovery = await reliability._recovery(address, b"", base, 10)
    assert recovery < 2, (recovery, base)
    # One probe in nine descheduled is noise, not a server still busy.
    state.script(lambda elapsed, index: "slow" if index % 9 == 4 else "ok")
    recovery = await reliability._recovery(address, b"", base, 10)
    assert recovery < 3, (recovery, base)


@pytest.mark.parametrize("what", ["slow", "fail"])
async def test_a_server_still_slow_or_failing_is_not_recovered(
    scripted: tuple[str, Scripted], what: str
) -> None:
    address, state = scripted
    base = await baseline(address)
    state.script(lambda elapsed, index: what if elapsed < 1.0 else "ok")
    recovery = await reliability._recovery(address, b"", base, 10)
    assert 1.0 <= recovery < 5, (recovery, base)


async def test_a_server_mostly_slow_or_stalled_never_recovers(
    scripted: tuple[str, Scripted],
) -> None:
    address, state = scripted
    base = await baseline(address)
    state.script(lambda elapsed, index: "ok" if index % 3 == 0 else "slow")
    assert math.isinf(await reliability._recovery(address, b"", base, 2.0))
    state.script(lambda elapsed, index: "stall")
    recovery = await reliability._recovery(address, b"", base, 1.0, probe_timeout=0.3)
    assert math.isinf(recovery) and state.calls >= 3
