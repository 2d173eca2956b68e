"""Channel options shared by every client (message limits, keepalive) and the one place that turns
the targets a user gives into a gRPC target and its load-balancing options.

A client takes one address (``"host:port"``), several (a list, or one string with commas:
``"10.0.0.1:8001,10.0.0.2:8001"``), or a name with a resolver scheme (``"dns:///svc:8001"``,
what a Kubernetes headless Service gives). Several addresses or a ``dns:`` name get gRPC's
``round_robin`` policy: one connection per backend, calls spread over the ready ones, a backend
that dies is skipped while the others carry on.

``aio_channel`` and ``sync_channel`` are the only places a client opens a channel, so every
client (sync, async, siege, the channel pool, RemoteManager, the CLI's reflection look-up) takes
the same ``tls`` argument and means the same by it: None is plaintext, a :class:`ClientTls` a
TLS (or, with a client certificate, mutual TLS) channel.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from typing import Any

import grpc

from ..errors import UsageError
from ..tls import ClientTls

__all__ = [
    "OWN_CONNECTION",
    "Targets",
    "aio_channel",
    "balanced_target",
    "channel_options",
    "sync_channel",
]

MiB = 1024 * 1024

#: One "host:port" (or a comma-separated list), a list of them, or "dns:///name:port".
Targets = str | Sequence[str]

#: Give a channel its own TCP connection instead of sharing one with every channel to the same
#: target (grpc's global subchannel pool); needed to spread load over SO_REUSEPORT workers.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]

#: The service config that selects round_robin (the channel argument form is deprecated).
ROUND_ROBIN = [("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]}))]


def channel_options(max_message_bytes: int = 64 * MiB) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
    ]


def balanced_target(targets: Targets) -> tuple[str, list[tuple[str, Any]]]:
    """The gRPC target for ``targets`` and the channel options its balancing needs.

    One plain address is passed through unchanged (no extra options). Several addresses must be
    IP literals of one family (gRPC's ``ipv4:``/``ipv6:`` resolvers take a list); for a name
    with several addresses, use ``dns:///name:port``.
    """
    addresses = _split(targets)
    if len(addresses) == 1:
        (address,) = addresses
        return address, ROUND_ROBIN if address.startswith("dns:") else []
    schemes = {_scheme(address) for address in addresses}
    if len(schemes) != 1:
        raise UsageError(f"several targets must be all IPv4 or all IPv6 addresses, got {addresses}")
    (scheme,) = schemes
    return f"{scheme}:{','.join(addresses)}", ROUND_ROBIN


def _split(targets: Targets) -> list[str]:
    items = targets.split(",") if isinstance(targets, str) else list(targets)
    addresses = [item.strip() for item in items if item.strip()]
    if not addresses:
        raise UsageError(f"no target address given: {targets!r}; expected HOST:PORT")
    if len(addresses) > 1:
        schemed = [address for address in addresses if "://" in address or ":/" in address]
        if schemed:
            raise UsageError(
                f"a target with a resolver scheme ({schemed[0]!r}) stands alone; "
                "give it as the only target"
            )
    return addresses


def _scheme(address: str) -> str:
    """The resolver scheme (ipv4 or ipv6) of an IP:PORT address; a clear error otherwise."""
    host, _, port = address.rpartition(":")
    if not port.isdigit() or not host:
        raise UsageError(f"target {address!r} is not HOST:PORT")
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise UsageError(
            f"several targets must be IP addresses, not {host!r}; for a name with several "
            f"addresses (a headless Service), give the one target dns:///{address}"
        ) from None
    if ip.version == 6 and not host.startswith("["):
        raise UsageError(f"write an IPv6 target with brackets: [{host}]:{port}")
    return f"ipv{ip.version}"


def aio_channel(
    targets: Targets, options: Sequence[tuple[str, Any]] = (), tls: ClientTls | None = None
) -> grpc.aio.Channel:
    """A grpc.aio channel to ``targets`` (balanced when several); TLS when ``tls`` is given."""
    address, balancing = balanced_target(targets)
    if tls is None:
        return grpc.aio.insecure_channel(address, options=[*options, *balancing])
    return grpc.aio.secure_channel(
        address, tls.grpc_credentials(), options=[*options, *balancing, *tls.grpc_options()]
    )


def sync_channel(
    targets: Targets, options: Sequence[tuple[str, Any]] = (), tls: ClientTls | None = None
) -> grpc.Channel:
    """A blocking channel to ``targets`` (balanced when several); TLS when ``tls`` is given."""
    address, balancing = balanced_target(targets)
    if tls is None:
        return grpc.insecure_channel(address, options=[*options, *balancing])
    return grpc.secure_channel(
        address, tls.grpc_credentials(), options=[*options, *balancing, *tls.grpc_options()]
    )
