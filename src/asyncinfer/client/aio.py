"""The async client: many calls in flight on one grpc.aio channel, with an optional cap."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Self

from ..errors import RpcError, UsageError
from ..tls import ClientTls
from ._method import Method, Request
from .channel import Targets, aio_channel, channel_options
from .report import LatencyRecorder, Report

__all__ = ["AsyncClient", "closed_loop"]

RequestSource = Request | Callable[[int], Request]


async def closed_loop(
    call: Callable[[Any], Awaitable[Any]],
    request: Any,
    *,
    concurrency: int,
    duration: float | None,
    count: int | None,
) -> Report:
    """``concurrency`` callers of ``call`` back to back until ``duration`` or ``count`` (the
    loop of every async load client); ``request`` is one request or ``index -> request``."""
    if duration is None and count is None:
        raise UsageError("run() needs a duration, a count, or both: load loops are bounded")
    make = request if callable(request) else (lambda _i: request)
    recorder = LatencyRecorder()
    deadline = time.perf_counter() + (duration if duration is not None else float("inf"))
    issued = 0

    async def caller() -> None:
        nonlocal issued
        while (count is None or issued < count) and time.perf_counter() < deadline:
            index = issued
            issued += 1
            started = time.perf_counter()
            try:
                await call(make(index))
            except RpcError as exc:
                recorder.failure(exc)
            else:
                recorder.success(time.perf_counter() - started)

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(caller())
    return recorder.report(f"async c={concurrency}")


class AsyncClient:
    """Concurrent calls of one RPC. With ``max_in_flight``, extra calls wait for a free slot.

    ``target``: one address, several (round-robin over them) or a ``dns:///`` name.
    """

    def __init__(
        self,
        target: Targets,
        method: Method,
        *,
        max_in_flight: int | None = None,
        timeout: float | None = 10.0,
        options: Sequence[tuple[str, Any]] = (),
        tls: ClientTls | None = None,
    ) -> None:
        if max_in_flight is not None and max_in_flight < 1:
            raise UsageError(f"max_in_flight must be >= 1 or None, not {max_in_flight}")
        self.method = method
        self.timeout = timeout
        self._channel = aio_channel(target, [*channel_options(), *options], tls)
        self._invoke = method.aio_invoker(self._channel)
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight else None

    async def call(self, request: Request, *, timeout: float | None = None) -> Any:  # noqa: ASYNC109 (a gRPC deadline)
        timeout = self.timeout if timeout is None else timeout
        if self._slots is None:
            return await self._invoke(request, timeout)
        async with self._slots:
            return await self._invoke(request, timeout)

    async def run(
        self,
        request: RequestSource,
        *,
        concurrency: int = 16,
        duration: float | None = None,
        count: int | None = None,
    ) -> Report:
        """Closed loop: ``concurrency`` callers back to back until ``duration`` or ``count``."""
        return await closed_loop(
            self.call, request, concurrency=concurrency, duration=duration, count=count
        )

    async def close(self) -> None:
        await self._channel.close(grace=None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
