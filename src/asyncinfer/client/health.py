"""Asks a server how it is: the container HEALTHCHECK and ``asyncinfer health`` use it.

A ``HOST:PORT`` target is asked through its gRPC health service (grpc.health.v1); an
``http://`` or ``https://`` URL through the KServe v2 readiness routes, for a server that
serves HTTP alone (``--allow-grpc false``): ``/v2/health/ready``, or a model's
``/v2/models/NAME/ready``.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ..errors import UsageError

__all__ = ["check_health"]


def check_health(target: str, service: str = "", *, timeout: float = 3.0) -> str:
    """The status name the server reports for ``service`` ("" is the whole server):
    SERVING, NOT_SERVING, SERVICE_UNKNOWN, ...; ``UNREACHABLE (<reason>)`` when no answer
    came. Over HTTP, ``service`` names a model."""
    if "://" in target:
        return _check_http(target, service, timeout)
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


def _check_http(target: str, model: str, timeout: float) -> str:
    """200 from the readiness route is SERVING; another HTTP status NOT_SERVING (Triton
    answers 400 for a model that is not ready, known or not)."""
    url = urllib.parse.urlsplit(target)
    if url.scheme not in ("http", "https") or not url.netloc or url.path not in ("", "/"):
        raise UsageError(
            f"a health target is HOST:PORT (gRPC) or http[s]://HOST:PORT (HTTP), not {target!r}"
        )
    path = f"/v2/models/{urllib.parse.quote(model, safe='')}/ready" if model else "/v2/health/ready"
    try:
        with urllib.request.urlopen(f"{url.scheme}://{url.netloc}{path}", timeout=timeout) as reply:
            return "SERVING" if reply.status == 200 else f"NOT_SERVING (HTTP {reply.status})"
    except urllib.error.HTTPError as exc:
        exc.close()
        return f"NOT_SERVING (HTTP {exc.code})"
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return f"UNREACHABLE ({reason})"
