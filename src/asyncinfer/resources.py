"""Resources: what every Context of a service shares, with an async start/stop life cycle.

Subclass it per service. The constructor only records configuration (no I/O, no threads, no
event-loop objects); ``start`` acquires what the service needs (pools, engines, channels) inside
the server's event loop and ``stop`` returns it. The server starts Resources in registration
order before it accepts calls and stops them in reverse order after the last call drained.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

__all__ = ["Resources"]


class Resources:
    """Shared state of one service. Override ``start``/``stop``; both run in the server's loop."""

    async def start(self) -> None:
        """Acquire what the contexts will share. Runs once, before the first call."""

    async def stop(self) -> None:
        """Release what ``start`` acquired. Runs once, after in-flight calls drained."""

    def ready(self) -> bool:
        """Whether the service can take calls now; health checking reports it."""
        return True

    def statistics(self) -> dict[str, Any]:
        """Counters of what these resources own (pools, queues), for metrics and tests."""
        return {}

    def collectors(self) -> Iterable[Collector]:
        """Prometheus collectors for this service's own metrics, read at scrape time."""
        return ()
