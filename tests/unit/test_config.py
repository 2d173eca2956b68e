from __future__ import annotations

import pytest

from asyncinfer import ConfigError, ServerConfig
from asyncinfer.tls import ServerTls


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"port": -1}, "port must be 0..65535"),
        ({"workers": 0}, "workers must be >= 1"),
        ({"workers": 2}, "set reuse_port=True"),
        ({"grace": -1.0}, "grace must be seconds >= 0"),
        ({"max_receive_message_bytes": 0}, "max_receive_message_bytes must be positive"),
        ({"loop": "tokio"}, "loop must be"),
        ({"serve_grpc": False, "tls": ServerTls("c.pem", "k.pem")}, "serve_grpc=False serves"),
    ],
)
def test_invalid_configuration_says_what_to_change(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        ServerConfig(**options)  # type: ignore[arg-type]


def test_defaults_are_bounded_and_single_process() -> None:
    config = ServerConfig()
    assert config.workers == 1 and not config.reuse_port
    assert config.max_concurrent_rpcs > 0 and config.max_receive_message_bytes > 0
