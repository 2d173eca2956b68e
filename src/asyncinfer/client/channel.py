"""Channels for every client: message limits, keepalive, and TLS when asked for.

``aio_channel`` and ``sync_channel`` are the only places a client opens a channel, so every
client (sync, async, siege, the channel pool, RemoteManager, the CLI's reflection look-up) takes
the same ``tls`` argument and means the same by it: None is plaintext, a :class:`ClientTls` a
TLS (or, with a client certificate, mutual TLS) channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from ..tls import ClientTls

__all__ = ["OWN_CONNECTION", "aio_channel", "channel_options", "sync_channel"]

MiB = 1024 * 1024

#: Give a channel its own TCP connection instead of sharing one with every channel to the same
#: target (grpc's global subchannel pool); needed to spread load over SO_REUSEPORT workers.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def channel_options(max_message_bytes: int = 64 * MiB) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
    ]


def aio_channel(
    target: str, options: Sequence[tuple[str, Any]] = (), tls: ClientTls | None = None
) -> grpc.aio.Channel:
    """A grpc.aio channel to ``target``; TLS when ``tls`` is given."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=list(options))
    return grpc.aio.secure_channel(
        target, tls.grpc_credentials(), options=[*options, *tls.grpc_options()]
    )


def sync_channel(
    target: str, options: Sequence[tuple[str, Any]] = (), tls: ClientTls | None = None
) -> grpc.Channel:
    """A blocking channel to ``target``; TLS when ``tls`` is given."""
    if tls is None:
        return grpc.insecure_channel(target, options=list(options))
    return grpc.secure_channel(
        target, tls.grpc_credentials(), options=[*options, *tls.grpc_options()]
    )
