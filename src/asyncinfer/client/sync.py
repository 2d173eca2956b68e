"""The sync client: one call in flight on a blocking channel; reports calls per second."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Self

from ..errors import RpcError, UsageError
from ..tls import ClientTls
from ._method import Method, Request
from .channel import Targets, channel_options, sync_channel
from .report import LatencyRecorder, Report

__all__ = ["SyncClient"]

RequestSource = Request | Callable[[int], Request]


class SyncClient:
    """Blocking calls of one RPC. ``call`` returns the reply (a list when the RPC streams).

    ``target``: one address, several (round-robin over them) or a ``dns:///`` name.
    """

    def __init__(
        self,
        target: Targets,
        method: Method,
        *,
        timeout: float | None = 10.0,
        options: Sequence[tuple[str, Any]] = (),
        tls: ClientTls | None = None,
    ) -> None:
        self.method = method
        self.timeout = timeout
        self._channel = sync_channel(target, [*channel_options(), *options], tls)
        self._invoke = method.sync_invoker(self._channel)

    def call(self, request: Request, *, timeout: float | None = None) -> Any:
        return self._invoke(request, self.timeout if timeout is None else timeout)

    def run(
        self, request: RequestSource, *, duration: float | None = None, count: int | None = None
    ) -> Report:
        """Call back to back until ``duration`` seconds or ``count`` calls, whichever is first."""
        if duration is None and count is None:
            raise UsageError("run() needs a duration, a count, or both: load loops are bounded")
        make = request if callable(request) else (lambda _i: request)
        recorder = LatencyRecorder()
        deadline = time.perf_counter() + (duration if duration is not None else float("inf"))
        index = 0
        while (count is None or index < count) and time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                self.call(make(index))
            except RpcError as exc:
                recorder.failure(exc)
            else:
                recorder.success(time.perf_counter() - started)
            index += 1
        return recorder.report("sync")

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
