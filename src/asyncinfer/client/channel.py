"""Channel options shared by every client: message limits and keepalive."""

from __future__ import annotations

__all__ = ["OWN_CONNECTION", "channel_options"]

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
