"""Server: binds services made of Contexts and Resources, serves health and reflection, stops
gracefully.

Life cycle: ``start()`` starts every Resources in registration order, binds the port (port 0
gives back the bound one) and marks the services SERVING. ``stop()`` marks them NOT_SERVING,
stops accepting calls, lets in-flight calls drain for ``grace`` seconds, cancels what is left
and stops the Resources in reverse order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import urllib.parse
from collections.abc import Sequence
from typing import Any, Protocol, Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from ._calls import CallCounter, CallCounts, CallsCollector, channelz_server_ids, generic_only
from ._handlers import AnyContext, make_handler
from ._reflection import pools_of
from .admission import Admission, AdmissionStatistics, ServerLimits
from .config import ServerConfig
from .context import Context
from .errors import ConfigError, UsageError
from .metrics import MetricsEndpoint, registry_for
from .resources import Resources
from .restriction import RestrictingInterceptor
from .tracing import Tracing

__all__ = ["FrontEnd", "Server", "ServerStatistics"]

log = logging.getLogger("asyncinfer.server")


@dataclasses.dataclass(frozen=True)
class ServerStatistics:
    """Admission counters per RPC path and each service's Resources statistics."""

    rpcs: dict[str, AdmissionStatistics]
    resources: dict[str, dict[str, Any]]
    #: Calls at the gRPC core and at the application's edge (shed calls: ``not_reached``).
    calls: CallCounts

    @property
    def idle(self) -> bool:
        return all(rpc.idle for rpc in self.rpcs.values())


class FrontEnd(Protocol):
    """Another protocol served on the Server's event loop over its services' Resources (the
    inference service's HTTP front end): started after them, stopped before them."""

    name: str

    @property
    def url(self) -> str: ...

    async def start(self, config: ServerConfig) -> None: ...

    async def stop(self) -> None: ...


@dataclasses.dataclass
class _Service:
    name: str
    resources: Resources
    contexts: dict[str, type[AnyContext]]


class Server:
    """A gRPC server for services built from Contexts. Construct, ``add_service``, ``start``.

    ``interceptors`` are grpc.aio server interceptors (authentication, say) that see every call
    before its handler, in order, after the configured protocol restrictions.
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),  # type: ignore[type-arg]
        **options: Any,
    ) -> None:
        if config is not None and options:
            raise UsageError("pass either a ServerConfig or keyword options, not both")
        self.config = config if config is not None else ServerConfig(**options)
        for interceptor in interceptors:
            if not isinstance(interceptor, grpc.aio.ServerInterceptor):
                raise ConfigError(
                    f"interceptors must be grpc.aio.ServerInterceptor instances, not "
                    f"{interceptor!r}"
                )
        self.interceptors = tuple(interceptors)
        self._calls = CallCounter()
        self._services: dict[str, _Service] = {}
        self._admissions: dict[str, Admission] = {}
        self._grpc: grpc.aio.Server | None = None
        #: Set when stop() has finished; None until start() (whether or not gRPC is served).
        self._terminated: asyncio.Event | None = None
        self._health: health_aio.HealthServicer | None = None
        self._started: list[Resources] = []
        self._port: int | None = None
        self._metrics: MetricsEndpoint | None = None
        self._front_ends: list[FrontEnd] = []
        #: What calls of every RPC hold together (streams, unsent replies); made at start().
        self.limits: ServerLimits | None = None
        #: Tracing settings and spans (configured from ``config.trace`` at start()).
        self.tracing = Tracing()

    def add_service(self, resources: Resources, *contexts: type[AnyContext]) -> None:
        """Serve ``contexts`` (all RPCs of one gRPC service) sharing ``resources``."""
        if self._terminated is not None:
            raise UsageError("add_service() must come before start()")
        if not isinstance(resources, Resources):
            raise ConfigError(f"resources must be a Resources instance, not {resources!r}")
        if not contexts:
            raise ConfigError("add_service() needs at least one Context class")
        names = {_context_service(cls) for cls in contexts}
        if len(names) != 1:
            raise ConfigError(
                f"one add_service() call serves one gRPC service, got {sorted(names)}"
            )
        (name,) = names
        if name in self._services:
            raise ConfigError(f"service {name} is already registered")
        by_method: dict[str, type[AnyContext]] = {}
        for cls in contexts:
            if cls.method.name in by_method:
                raise ConfigError(
                    f"{name}/{cls.method.name} is implemented twice: "
                    f"{by_method[cls.method.name].__qualname__} and {cls.__qualname__}"
                )
            by_method[cls.method.name] = cls
        self._services[name] = _Service(name, resources, by_method)

    def add_front_end(self, front_end: FrontEnd) -> None:
        """Serve ``front_end`` too, on this server's loop, for as long as the server runs."""
        if self._terminated is not None:
            raise UsageError("add_front_end() must come before start()")
        self._front_ends.append(front_end)

    @property
    def front_ends(self) -> tuple[FrontEnd, ...]:
        return tuple(self._front_ends)

    @property
    def port(self) -> int:
        """The bound gRPC port."""
        if not self.config.serve_grpc:
            raise UsageError(
                "this server serves no gRPC port (serve_grpc=False); its front ends' URLs are "
                "in server.front_ends"
            )
        if self._port is None:
            raise UsageError("the server is not started; port is known after start()")
        return self._port

    @property
    def metrics_url(self) -> str | None:
        """Where Prometheus scrapes this server, once started with a metrics_port."""
        return None if self._metrics is None else self._metrics.url(self._metrics_host)

    @property
    def _metrics_host(self) -> str:
        return self.config.metrics_host or self.config.host

    @property
    def address(self) -> str:
        """HOST:PORT of gRPC, or without gRPC (serve_grpc=False), of the first front end."""
        if not self.config.serve_grpc:
            if self._terminated is None or not self._front_ends:
                raise UsageError("the server is not started; its address is known after start()")
            return urllib.parse.urlsplit(self._front_ends[0].url).netloc
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"{host}:{self.port}"

    async def start(self) -> int:
        """Start Resources, bind, serve. Returns the bound gRPC port (0 without gRPC)."""
        if self._terminated is not None:
            raise UsageError("start() was already called")
        if not self._services:
            raise ConfigError("no services: call add_service() before start()")
        config = self.config
        if not config.serve_grpc and not self._front_ends:
            raise ConfigError(
                "serve_grpc=False leaves nothing to serve: add a front end (HTTP) or serve gRPC"
            )
        self._terminated = asyncio.Event()
        channelz_before = channelz_server_ids()
        server = self._grpc_server() if config.serve_grpc else None
        self._grpc = server
        self.limits = ServerLimits(
            max_streams=config.max_streams,
            max_streams_per_connection=config.max_streams_per_connection,
            max_unsent_reply_bytes=config.max_unsent_reply_bytes,
            max_unsent_reply_bytes_per_connection=config.max_unsent_reply_bytes_per_connection,
        )
        self.tracing.configure(config.trace, workers=config.workers)
        try:
            await self._start_resources()
            if server is not None:
                self._add_handlers(server)
                self._port = self._bind(server)
            await self._start_metrics()
            for front_end in self._front_ends:
                await front_end.start(config)
            if server is not None:
                await server.start()
                self._calls.identify(channelz_before)
        except BaseException:
            await self._stop_front_ends()
            await self._stop_metrics()
            await self._stop_resources()
            raise
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("serving %s on %s", ", ".join(self._services), self.address)
        if self.metrics_url is not None:
            log.info("metrics on %s", self.metrics_url)
        for front_end in self._front_ends:
            log.info("%s on %s", front_end.name, front_end.url)
        return self._port or 0

    async def stop(self, grace: float | None = None) -> None:
        """Drain in-flight calls for ``grace`` seconds (the config's by default), then stop."""
        if self._terminated is None:
            return
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._stop_front_ends()
        if self._grpc is not None:
            await self._grpc.stop(self.config.grace if grace is None else grace)
        await self._stop_metrics()
        await self._stop_resources()
        await asyncio.to_thread(self.tracing.shutdown)  # exports the spans not yet sent
        self._terminated.set()

    async def wait_for_termination(self) -> None:
        if self._terminated is None:
            raise UsageError("start() the server before waiting for it")
        if self._grpc is not None:
            await self._grpc.wait_for_termination()
        else:
            await self._terminated.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def statistics(self) -> ServerStatistics:
        return ServerStatistics(
            rpcs={path: adm.statistics() for path, adm in self._admissions.items()},
            resources={name: svc.resources.statistics() for name, svc in self._services.items()},
            calls=self._call_counts(),
        )

    def _call_counts(self) -> CallCounts:
        arrived = {path: admission.arrived for path, admission in self._admissions.items()}
        return self._calls.counts(arrived)

    def _grpc_server(self) -> grpc.aio.Server:
        restrictions = self.config.restrictions
        interceptors = [
            *([RestrictingInterceptor(restrictions)] if restrictions else []),
            *self.interceptors,
        ]
        server = grpc.aio.server(
            options=self.config.grpc_options(),
            maximum_concurrent_rpcs=self.config.max_concurrent_rpcs,
            # With interceptors the counter leads them; without, it is the first handler (and
            # every call is spared grpc.aio's interceptor chain): see _calls.
            interceptors=[self._calls, *interceptors] if interceptors else None,
        )
        if not interceptors:
            server.add_generic_rpc_handlers((self._calls,))
        return server

    def _add_handlers(self, server: grpc.aio.Server) -> None:
        for service in self._services.values():
            handlers = {}
            for method_name, cls in service.contexts.items():
                admission = Admission(
                    cls.rpc_path(), cls.max_in_flight, queue_timeout=cls.queue_timeout
                )
                self._admissions[cls.rpc_path()] = admission
                handlers[method_name] = make_handler(
                    cls, service.resources, admission, self.limits, self.tracing
                )
            server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(service.name, handlers),)
            )
        names = list(self._services)
        if self.config.health:
            self._health = health_aio.HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(self._health, generic_only(server))
            names.append(health_pb2.DESCRIPTOR.services_by_name["Health"].full_name)
        if self.config.reflection:
            # Services in a private descriptor pool (inference) need it searched as well.
            pools = pools_of(
                cls.method.containing_service.file
                for service in self._services.values()
                for cls in service.contexts.values()
            )
            reflection.enable_server_reflection(
                [*names, reflection.SERVICE_NAME],
                generic_only(server),
                pool=pools,  # type: ignore[arg-type]
            )

    def _bind(self, server: grpc.aio.Server) -> int:
        try:
            tls = self.config.tls
            if tls is None:
                port = server.add_insecure_port(self.config.address)
            else:
                port = server.add_secure_port(self.config.address, tls.grpc_credentials())
        except RuntimeError as exc:
            port = 0
            cause: BaseException | None = exc
        else:
            cause = None
        if (port == 0 and self.config.port != 0) or cause is not None:
            hint = (
                "" if self.config.reuse_port else " (or set reuse_port=True to share it on purpose)"
            )
            raise ConfigError(
                f"cannot bind {self.config.address}: the port is in use or the address is not "
                f"local; choose another port or port=0{hint}"
            ) from cause
        return port

    async def _start_metrics(self) -> None:
        if self.config.metrics_port is None:
            return
        collectors = [c for svc in self._services.values() for c in svc.resources.collectors()]
        collectors.append(CallsCollector(self._call_counts))
        registry = registry_for(lambda: self._admissions, collectors)
        self._metrics = await MetricsEndpoint.start(
            self._metrics_host, self.config.metrics_port, registry
        )

    async def _stop_front_ends(self) -> None:
        for front_end in reversed(self._front_ends):
            try:
                await front_end.stop()
            except Exception:
                log.exception("stopping the %s front end failed", front_end.name)

    async def _stop_metrics(self) -> None:
        if self._metrics is not None:
            metrics, self._metrics = self._metrics, None
            await metrics.stop()

    async def _start_resources(self) -> None:
        for service in self._services.values():
            if any(service.resources is started for started in self._started):
                continue
            await service.resources.start()
            self._started.append(service.resources)

    async def _stop_resources(self) -> None:
        while self._started:
            resources = self._started.pop()
            try:
                await resources.stop()
            except Exception:
                log.exception("stopping %s failed", type(resources).__qualname__)

    async def _set_health(self, status: int) -> None:
        if self._health is None:
            return
        if status == health_pb2.HealthCheckResponse.SERVING:
            ready = all(svc.resources.ready() for svc in self._services.values())
            status = status if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self._services):
            await self._health.set(name, status)


def _context_service(cls: type[AnyContext]) -> str:
    if not (isinstance(cls, type) and issubclass(cls, Context) and hasattr(cls, "request_type")):
        raise ConfigError(f"{cls!r} is not a concrete Context class")
    return cls.method.containing_service.full_name
