"""ChannelPool: a few grpc.aio channels to one service, shared by every call a glue service
makes to it, handed out round-robin.

    pool = ChannelPool("127.0.0.1:50061", size=4)        # in Resources.__init__: no I/O
    await pool.open()                                     # in Resources.start(), in the loop
    reply = await pool.call(FEATURIZE, request, timeout=self.call.time_remaining())
    await pool.close()                                    # in Resources.stop()

Each channel gets its own TCP connection (not grpc's process-wide shared subchannel), so a
pool of N spreads its calls over up to N workers of a SO_REUSEPORT server and over N HTTP/2
connections' flow-control windows. Calls made while a Context's call is cancelled are
cancelled with it: grpc.aio cancels an RPC whose awaiting task is cancelled, so a client that
gives up on the glue also ends the glue's calls downstream. A call made inside a traced call
gets a client span and carries its W3C ``traceparent``, so the callee's spans join the trace.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Self

import grpc
from opentelemetry.trace import SpanKind

from ..errors import UsageError
from ..tls import ClientTls
from ..tracing import child, inject
from ._method import Method, Request
from .channel import OWN_CONNECTION, Targets, aio_channel, channel_options

__all__ = ["ChannelPool"]

Invoker = Callable[..., Awaitable[Any]]


class ChannelPool:
    """``size`` channels to ``target``; ``call`` picks the next one round-robin.

    ``target``: one address, several or a ``dns:///`` name; with several backends each channel
    balances its calls over all of them (gRPC's round_robin).
    """

    def __init__(
        self,
        target: Targets,
        *,
        size: int = 4,
        default_timeout: float | None = 10.0,
        options: Sequence[tuple[str, Any]] = (),
        tls: ClientTls | None = None,
    ) -> None:
        if size < 1:
            raise UsageError(f"a channel pool needs size >= 1, not {size}")
        self.target = target
        self.size = size
        self.default_timeout = default_timeout
        self._options = [*channel_options(), *OWN_CONNECTION, *options]
        self._tls = tls
        self._channels: list[grpc.aio.Channel] = []
        self._invokers: dict[tuple[int, str], Invoker] = {}
        self._next = itertools.count()
        self.calls = 0

    async def open(self) -> None:
        """Create the channels (in the running loop: grpc.aio channels belong to one loop)."""
        if self._channels:
            raise UsageError(f"the channel pool to {self.target} is already open")
        self._channels = [
            aio_channel(self.target, self._options, self._tls) for _ in range(self.size)
        ]

    async def close(self) -> None:
        channels, self._channels = self._channels, []
        self._invokers.clear()
        for channel in channels:
            await channel.close(grace=None)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def call(
        self,
        method: Method,
        request: Request,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (a gRPC deadline, passed on)
    ) -> Any:
        """The reply of ``method``; an RpcError for the status it failed with.

        ``timeout`` is the seconds left of the caller's own deadline (pass
        ``self.call.time_remaining()`` from a Context); None falls back to ``default_timeout``
        so that no downstream call waits forever.
        """
        if not self._channels:
            raise UsageError(f"the channel pool to {self.target} is not open; open() it first")
        index = next(self._next) % self.size
        invoker = self._invokers.get((index, method.path))
        if invoker is None:
            invoker = self._invokers[(index, method.path)] = method.aio_invoker(
                self._channels[index]
            )
        self.calls += 1
        deadline = self.default_timeout if timeout is None else timeout
        # Inside a traced call: a client span, whose context the callee gets as traceparent.
        active = child(method.path[1:], {"rpc.system": "grpc"}, kind=SpanKind.CLIENT)
        if active is None:
            return await invoker(request, deadline)
        try:
            reply = await invoker(request, deadline, inject(active.span))
        except BaseException as exc:
            active.finish(exc)
            raise
        active.finish()
        return reply

    def statistics(self) -> dict[str, Any]:
        return {"target": self.target, "channels": len(self._channels), "calls": self.calls}
