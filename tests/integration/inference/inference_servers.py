"""Inference servers on 127.0.0.1 port 0 for tests, each in its own thread and event loop.

A thread of its own lets both tritonclient's blocking client and its asyncio client (in the
test's loop) talk to the same server.
"""

from __future__ import annotations

import asyncio
import pathlib
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import tritonclient.grpc.aio as aioclient

from asyncinfer.client.channel import OWN_CONNECTION
from asyncinfer.server import Server

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples"
REPOSITORY = EXAMPLES / "model_repository"
EXPLICIT_REPOSITORY = EXAMPLES / "model_repository_explicit"


class ThreadedServer:
    """Runs a Server built by ``factory`` on its own loop in a daemon thread."""

    def __init__(self, factory: Callable[[], Server]) -> None:
        self._factory = factory
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.server: Server | None = None

    def run(self, coroutine: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def __enter__(self) -> str:
        self._thread.start()

        async def start() -> Server:
            server = self._factory()
            await server.start()
            return server

        self.server = self.run(start())
        return f"127.0.0.1:{self.server.port}"

    @property
    def http_address(self) -> str:
        """HOST:PORT of the started server's HTTP front end."""
        assert self.server is not None, "start the server first"
        (front_end,) = self.server.front_ends
        return front_end.url.split("://", 1)[1]

    def __exit__(self, *exc_info: object) -> None:
        if self.server is not None:
            self.run(self.server.stop(0))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def infer_on_fresh_connections(
    address: str, model: str, array: np.ndarray, calls: int, *, name: str = "IN"
) -> None:
    """``calls`` inferences of ``array`` as input ``name``, each on a connection of its own, so
    that SO_REUSEPORT spreads them over a server's workers."""
    datatype = {np.dtype(np.int32): "INT32", np.dtype(np.float32): "FP32"}[array.dtype]
    for _ in range(calls):
        client = aioclient.InferenceServerClient(
            address, channel_args=[(k, v) for k, v in OWN_CONNECTION]
        )
        try:
            tensor = aioclient.InferInput(name, list(array.shape), datatype)
            tensor.set_data_from_numpy(array)
            await client.infer(model, [tensor])
        finally:
            await client.close()
