"""Asks a server's gRPC health service (grpc.health.v1) how it is: the container HEALTHCHECK and
``asyncinfer health`` use it."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["check_health"]


def check_health(target: str, service: str = "", *, timeout: float = 3.0) -> str:
    """The status name the server reports for ``service`` ("" is the whole server):
    SERVING, NOT_SERVING, SERVICE_UNKNOWN, ...; ``UNREACHABLE (<code>)`` when no answer came."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code() if callable(getattr(exc, "code", None)) else None
            if code == grpc.StatusCode.NOT_FOUND:
                return "SERVICE_UNKNOWN"
            return f"UNREACHABLE ({code.name if code is not None else exc})"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
