"""Finds an RPC by name on a running server through gRPC server reflection."""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from ..errors import NotFound, UsageError
from ..tls import ClientTls
from ._method import Method, to_error
from .channel import Targets, sync_channel

__all__ = ["resolve_method"]


def _full_name(name: str) -> str:
    """The full name of an RPC given as /pkg.Service/Method, pkg.Service/Method or dotted."""
    stripped = name.strip("/")
    if "/" in stripped:
        service, _, method = stripped.partition("/")
        return f"{service}.{method}"
    if "." not in stripped:
        raise UsageError(f"name the RPC as /package.Service/Method, not {name!r}")
    return stripped


def resolve_method(
    target: Targets, name: str, *, timeout: float = 10.0, tls: ClientTls | None = None
) -> Method:
    """The Method called ``name`` on the server at ``target``, described by its reflection."""
    full_name = _full_name(name)
    with sync_channel(target, tls=tls) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise NotFound(f"no server answered at {target} within {timeout:.0f}s") from None
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        service_name, _, method_name = full_name.rpartition(".")
        try:
            service = pool.FindServiceByName(service_name)
        except KeyError:
            services = _services(channel)
            raise NotFound(
                f"{target} does not serve {full_name}; its services are {services}"
            ) from None
        except grpc.RpcError as exc:
            raise to_error(exc) from None
    if method_name not in service.methods_by_name:
        methods = sorted(service.methods_by_name)
        raise NotFound(f"{service_name} has no method {method_name}; its methods are {methods}")
    return Method.of(service.methods_by_name[method_name])


def _services(channel: grpc.Channel) -> list[str]:
    try:
        return sorted(ProtoReflectionDescriptorDatabase(channel).get_services())
    except grpc.RpcError:
        return ["(reflection unavailable)"]
