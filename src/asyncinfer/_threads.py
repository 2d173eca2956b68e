"""Threads and event loops: awaiting work that runs on a thread, where cancellation cannot
reach the thread itself (``uninterrupted``), and a loop of its own on a thread, for blocking code
that drives asyncio work (``LoopThread``).

Engines and model backends hand blocking calls (ONNX Runtime, TensorRT, a plain ``def execute``)
to threads while they hold leases (a session, an instance, a memory stack). A thread cannot be
interrupted, so the one rule of this module is that a cancelled caller keeps its leases until
its thread has ended.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread", "uninterrupted"]

T = TypeVar("T")


async def uninterrupted(work: Awaitable[T], on_cancel: Callable[[], None] | None = None) -> T:
    """Await ``work`` (a call running on a thread); if cancelled, still wait for it to end.

    A thread cannot be interrupted. Returning a lease while its thread still runs would hand
    the same session, instance or buffers to the next request under the running call, so a
    cancelled caller keeps its leases until the thread is done, then sees the cancellation.
    ``on_cancel`` runs as soon as the cancellation arrives, while the thread still runs (so
    the work can be told its caller is gone and stop early).
    """
    future = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if on_cancel is not None:
            on_cancel()
        while not future.done():
            try:
                await asyncio.wait([future])
            except asyncio.CancelledError:
                continue
        if not future.cancelled():
            future.exception()  # retrieved: the caller was cancelled, the result is dropped
        raise


class LoopThread:
    """An event loop of its own, run by one daemon thread, for blocking code that drives
    asyncio work (the sync HTTP client, the metrics endpoint of a loop-less process, the OTLP
    test receiver). ``run`` waits for a coroutine's result; ``submit`` answers a concurrent
    Future at once; ``close`` stops the loop and joins the thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(work, self.loop)

    def run(self, work: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self.submit(work).result(timeout)

    def close(self, timeout: float = 10.0) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()
