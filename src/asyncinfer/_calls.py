"""Call counts at the gRPC core and at the application's edge, so that calls shed inside gRPC
before any handler ran (refused over ``max_concurrent_rpcs``, or cancelled or timed out while
queued in the core) are counted too.

Three places count: the core (channelz's ``calls_started``, ``calls_succeeded``,
``calls_failed`` of this server; grpcio keeps them for every server), :class:`CallCounter`, which
sees each call that reaches Python (per method, every service), and each RPC's Admission, which
counts the calls its handler started (``arrived``). ``started - reached`` is the calls the core
took and Python never saw (shed or cancelled while queued in the core, or queued there now);
``reached - arrived`` of an RPC is the calls grpc.aio refused between the handler lookup and the
handler (over ``max_concurrent_rpcs``).

The counter sits where it costs least. A server with interceptors (restrictions, the
application's own) runs grpc.aio's asynchronous interceptor chain for every call anyway, and the
counter is its first link, so calls an interceptor refuses are counted as reached. A server with
none is spared that chain (a coroutine and an await per call): the counter is the first generic
handler instead, whose lookup grpc.aio runs for every call, before its concurrency check, and it
answers "not mine" so that the lookup goes on. Services that register their methods with the
core (health and reflection's generated code) would skip generic handlers, so a Server adds them
through :func:`generic_only`.

channelz is reached through grpcio's own binding (``grpc._cython.cygrpc``), which the
grpcio-channelz servicer uses as well; if a grpcio release drops it, the core counts read as
absent (None) and nothing else changes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import grpc
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CallCounter", "CallCounts", "CallsCollector", "channelz_server_ids", "generic_only"]

log = logging.getLogger("asyncinfer.server")


def _channelz() -> Any:
    try:
        from grpc._cython import cygrpc  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - every grpcio release so far has it
        return None
    return cygrpc if hasattr(cygrpc, "channelz_get_servers") else None


def channelz_server_ids() -> set[int]:
    """The channelz ids of the gRPC servers of this process now (empty if unavailable)."""
    channelz = _channelz()
    if channelz is None:
        return set()
    servers = json.loads(channelz.channelz_get_servers(0)).get("server", [])
    return {int(server["ref"]["serverId"]) for server in servers}


@dataclasses.dataclass(frozen=True, slots=True)
class CallCounts:
    """Calls of one server: at the core (None when channelz is unavailable) and at the edge."""

    reached: int
    #: Per RPC path: calls that reached Python but never their handler (shed by grpc.aio).
    shed: dict[str, int]
    started: int | None
    succeeded: int | None
    failed: int | None

    @property
    def not_reached(self) -> int | None:
        """Calls the core took that no interceptor or handler saw (shed, or queued there)."""
        return None if self.started is None else max(0, self.started - self.reached)


class CallCounter(grpc.aio.ServerInterceptor, grpc.GenericRpcHandler):  # type: ignore[type-arg]
    """Counts the calls that reach Python, and reads the core's counts of the same server.

    Install it once: as the first interceptor (:meth:`intercept_service`) of a server that has
    interceptors, or as the first generic handler (:meth:`service`) of one that has none.
    """

    def __init__(self) -> None:
        self.reached: dict[str, int] = {}
        self.server_id: int | None = None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        self.service(handler_call_details)
        return await continuation(handler_call_details)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> None:
        """Counts the call and serves none: the lookup goes on to the next handler."""
        method = handler_call_details.method
        self.reached[method] = self.reached.get(method, 0) + 1

    def identify(self, before: set[int]) -> None:
        """After start: this server is the one channelz id that was not there ``before``."""
        new = channelz_server_ids() - before
        self.server_id = new.pop() if len(new) == 1 else None
        if self.server_id is None and _channelz() is not None:
            log.debug("channelz: could not tell this server apart; core call counts are off")

    def counts(self, arrived: Mapping[str, int]) -> CallCounts:
        """The counts now; ``arrived``: per RPC path, the calls its handler started."""
        reached = dict(self.reached)  # a copy: the metrics thread reads while the loop counts
        data: dict[str, str] = {}
        channelz = _channelz()
        if self.server_id is not None and channelz is not None:
            try:
                server = json.loads(channelz.channelz_get_server(self.server_id))
                data = server.get("server", {}).get("data", {})
            except (ValueError, KeyError):
                data = {}
        known = bool(data) or self.server_id is not None

        def field(name: str) -> int | None:
            return int(data.get(name, 0)) if known else None

        return CallCounts(
            reached=sum(reached.values()),
            shed={path: max(0, reached.get(path, 0) - n) for path, n in arrived.items()},
            started=field("callsStarted"),
            succeeded=field("callsSucceeded"),
            failed=field("callsFailed"),
        )


class _GenericOnly:
    """A server as generated ``add_*Servicer_to_server`` code sees it, with generic handlers only.

    Generated code adds each service twice, as a generic handler and as methods registered with
    the core; grpc.aio looks registered methods up before any generic handler, past the
    counter. Dropping the registration leaves the generic handler, which serves the same calls.
    """

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service_name: str, handlers: Any) -> None:
        del service_name, handlers  # served by the generic handler added with them


def generic_only(server: grpc.aio.Server) -> Any:
    """``server`` for generated registration code, so that the counter sees its calls too."""
    return _GenericOnly(server)


class CallsCollector(Collector):
    """``asyncinfer_grpc_*``: the core's call counts beside the calls that reached Python."""

    def __init__(self, counts: Callable[[], CallCounts]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        counts = self._counts()
        yield CounterMetricFamily(
            "asyncinfer_grpc_calls_reached",
            "Calls that reached the application (any service), counted before any handler",
            value=counts.reached,
        )
        shed = CounterMetricFamily(
            "asyncinfer_rpc_shed",
            "Calls refused by grpc.aio before their handler ran (over max_concurrent_rpcs)",
            labels=["service", "method"],
        )
        for path, count in counts.shed.items():
            _, service, method = path.split("/", 2)
            shed.add_metric([service, method], count)
        yield shed
        if counts.started is None:
            return
        core = CounterMetricFamily(
            "asyncinfer_grpc_core_calls",
            "Calls by the gRPC core's outcome (channelz), shed calls included",
            labels=["outcome"],
        )
        core.add_metric(["started"], counts.started)
        core.add_metric(["succeeded"], counts.succeeded or 0)
        core.add_metric(["failed"], counts.failed or 0)
        yield core
        yield GaugeMetricFamily(
            "asyncinfer_grpc_calls_not_reached",
            "Calls the gRPC core took that never reached the application: shed inside gRPC "
            "(over max_concurrent_rpcs, cancelled or past their deadline while queued) or "
            "queued there now",
            value=counts.not_reached or 0,
        )
