"""Awaiting work that runs on a thread, where cancellation cannot reach the thread itself.

Engines and model backends hand blocking calls (ONNX Runtime, TensorRT, a plain ``def execute``)
to threads while they hold leases (a session, an instance, a memory stack). A thread cannot be
interrupted, so the one rule of this module is that a cancelled caller keeps its leases until
its thread has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["uninterrupted"]

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
