"""Restricted protocols: groups of RPCs that answer only calls carrying a key header, as
tritonserver's ``--grpc-restricted-protocol=<protocols>:<key>=<value>``.

One :class:`RestrictedGroup` per flag: the protocols it covers (``health``, ``metadata``,
``inference``, ``shared-memory``, ``model-config``, ``model-repository``, ``statistics``,
``trace``, ``logging``) and the header and value a call must carry. A protocol may belong to
one group only. :class:`Restrictions` holds the groups and answers, for a protocol and a way to
read a request header, the refusal text or None; it knows nothing about gRPC, so the HTTP front
end's ``--http-restricted-api`` uses it unchanged (there the header is ``<key>`` itself).

Over gRPC the header is ``triton-grpc-protocol-<key>``, the refusal is UNAVAILABLE "This
protocol is restricted, expecting header 'triton-grpc-protocol-<key>'" (Triton's text), and
the protocol of a call is looked up by its full method path in :data:`GRPC_PROTOCOLS`, the one
table of which RPC belongs to which protocol. Methods not in the table (users' own services,
reflection) are never restricted.
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc

from ._handlers import METHOD_HANDLERS
from .errors import ConfigError

__all__ = [
    "GRPC_HEADER_PREFIX",
    "GRPC_PROTOCOLS",
    "PROTOCOLS",
    "RestrictedGroup",
    "RestrictingInterceptor",
    "Restrictions",
]

PROTOCOLS = (
    "health",
    "metadata",
    "inference",
    "shared-memory",
    "model-config",
    "model-repository",
    "statistics",
    "trace",
    "logging",
)
GRPC_HEADER_PREFIX = "triton-grpc-protocol-"

_INFERENCE = "/inference.GRPCInferenceService/"
_BY_PROTOCOL = {
    "health": ("ServerLive", "ServerReady", "ModelReady"),
    "metadata": ("ServerMetadata", "ModelMetadata"),
    "inference": ("ModelInfer", "ModelStreamInfer"),
    "shared-memory": tuple(
        f"{kind}SharedMemory{rpc}"
        for kind in ("System", "Cuda")
        for rpc in ("Status", "Register", "Unregister")
    ),
    "model-config": ("ModelConfig",),
    "model-repository": ("RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload"),
    "statistics": ("ModelStatistics",),
    "trace": ("TraceSetting",),
    "logging": ("LogSettings",),
}
#: Full gRPC method path -> protocol; gRPC health checking counts as ``health`` (as on Triton).
GRPC_PROTOCOLS: Mapping[str, str] = {
    **{_INFERENCE + rpc: protocol for protocol, rpcs in _BY_PROTOCOL.items() for rpc in rpcs},
    "/grpc.health.v1.Health/Check": "health",
    "/grpc.health.v1.Health/Watch": "health",
}


@dataclasses.dataclass(frozen=True, slots=True)
class RestrictedGroup:
    """Protocols that need header ``key`` with value ``value``."""

    protocols: frozenset[str]
    key: str
    value: str

    def __post_init__(self) -> None:
        unknown = sorted(self.protocols - set(PROTOCOLS))
        if unknown or not self.protocols:
            raise ConfigError(
                f"unknown restricted protocol {', '.join(map(repr, unknown)) or '(none given)'}; "
                f"allowed protocols: {', '.join(PROTOCOLS)}"
            )
        if not self.key or any(c.isspace() or c.isupper() for c in self.key):
            raise ConfigError(
                f"restricted-protocol key {self.key!r} must be a non-empty lower-case header name"
            )

    @classmethod
    def parse(cls, spec: str) -> RestrictedGroup:
        """``health,inference:key=value`` (tritonserver's flag syntax)."""
        protocols, colon, setting = spec.partition(":")
        key, equals, value = setting.partition("=")
        if not colon or not equals:
            raise ConfigError(
                f"restricted protocol {spec!r} must look like <protocol>,<protocol>:<key>=<value>"
            )
        names = frozenset(p.strip() for p in protocols.split(",") if p.strip())
        return cls(names, key.strip(), value)


@dataclasses.dataclass(frozen=True, slots=True)
class Restrictions:
    """The restricted groups of one server; a protocol is in at most one of them."""

    groups: tuple[RestrictedGroup, ...] = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for group in self.groups:
            for protocol in sorted(group.protocols):
                if protocol in seen:
                    raise ConfigError(
                        f"protocol '{protocol}' can not be specified in multiple config groups"
                    )
                seen.add(protocol)

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Restrictions:
        return cls(tuple(RestrictedGroup.parse(spec) for spec in specs))

    def __bool__(self) -> bool:
        return bool(self.groups)

    def group_of(self, protocol: str | None) -> RestrictedGroup | None:
        """The group that restricts ``protocol``; None when it is not restricted."""
        return next((g for g in self.groups if protocol in g.protocols), None)

    def refusal(
        self,
        protocol: str | None,
        header: Callable[[str], str | None],
        prefix: str,
        noun: str = "protocol",
    ) -> str | None:
        """None when a call of ``protocol`` may proceed, else the text it is refused with.

        ``header(name)`` reads the call's header ``name``; the expected one is ``prefix + key``.
        ``noun``: what the text calls it (tritonserver says "API" over HTTP).
        """
        group = self.group_of(protocol)
        if group is None:
            return None
        name = prefix + group.key
        given = header(name)
        if given is not None and hmac.compare_digest(given.encode(), group.value.encode()):
            return None
        return f"This {noun} is restricted, expecting header '{name}'"


Continuation = Callable[[grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any]"]]


class RestrictingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses calls of restricted protocols that lack the group's header, before any handler
    code runs; the refusal has the call's own shape, so a stream is refused at once."""

    def __init__(
        self, restrictions: Restrictions, protocols: Mapping[str, str] = GRPC_PROTOCOLS
    ) -> None:
        self._restrictions = restrictions
        self._protocols = protocols

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        protocol = self._protocols.get(handler_call_details.method)
        if handler is None or protocol is None:
            return handler
        metadata = handler_call_details.invocation_metadata or ()

        def header(name: str) -> str | None:
            values = [v for k, v in metadata if k == name]
            return values[0] if len(values) == 1 and isinstance(values[0], str) else None

        text = self._restrictions.refusal(protocol, header, GRPC_HEADER_PREFIX)
        return handler if text is None else _refusing(handler, text)


def _refusing(handler: grpc.RpcMethodHandler[Any, Any], text: str) -> Any:
    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNAVAILABLE, text)

    async def refuse_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNAVAILABLE, text)
        yield  # pragma: no cover - makes this an async generator

    factory = METHOD_HANDLERS[(handler.request_streaming, handler.response_streaming)]
    behaviour = refuse_stream if handler.response_streaming else refuse
    return factory(
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
