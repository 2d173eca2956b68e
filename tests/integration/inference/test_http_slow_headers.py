"""A client that sends a request's headers slowly (slowloris) is closed by the HTTP front end
once its keep-alive timeout has passed since the connection opened (or since its last reply):
the time to receive request headers is bounded, not reset by each trickled header line."""

from __future__ import annotations

import asyncio
import time

import pytest

from asyncinfer.inference.app import build_server
from asyncinfer.inference.http import front_end

from .inference_servers import REPOSITORY


@pytest.mark.timeout(30)
async def test_headers_sent_slowly_are_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(front_end, "KEEPALIVE_TIMEOUT", 1.0)
    server = build_server(REPOSITORY, grpc_port=0, http_port=0)
    await server.start()
    try:
        (http,) = [f for f in server.front_ends if isinstance(f, front_end.HttpFrontEnd)]
        reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
        started = time.monotonic()
        writer.write(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n")
        closed_after = None
        for line in range(40):  # a header line every 0.2 s: never a whole request
            try:
                async with asyncio.timeout(0.2):
                    if await reader.read(1) == b"":
                        closed_after = time.monotonic() - started
                        break
            except TimeoutError:
                pass
            writer.write(b"X-Slow-%d: 1\r\n" % line)
        writer.close()
        assert closed_after is not None, "the server kept a slow client's connection for 8 s"
        assert 0.9 <= closed_after < 3.0
    finally:
        await server.stop()
