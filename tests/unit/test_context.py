from __future__ import annotations

from typing import Any

import pytest

from asyncinfer import (
    BidiStreamContext,
    ConfigError,
    Context,
    Resources,
    ServerStreamContext,
    UnaryContext,
    rpc_method,
)
from tests.protos import ping_pb2

PING = rpc_method(ping_pb2, "Ping", "Ping")
COUNTDOWN = rpc_method(ping_pb2, "Ping", "Countdown")


def test_a_valid_context_records_its_message_types() -> None:
    class Good(UnaryContext[Any, Any, Resources]):
        method = PING

        async def execute(self, request: Any) -> Any:
            return request

    assert Good.request_type.DESCRIPTOR.full_name == "asyncinfer.examples.PingRequest"
    assert Good.rpc_path() == "/asyncinfer.examples.Ping/Ping"


def test_sync_execute_is_rejected_at_class_definition() -> None:
    with pytest.raises(ConfigError, match=r"execute must be `async def`"):

        class Bad(UnaryContext[Any, Any, Resources]):
            method = PING

            def execute(self, request: Any) -> Any:
                return request


def test_missing_method_descriptor_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"set the class attribute `method`"):

        class Bad(UnaryContext[Any, Any, Resources]):
            async def execute(self, request: Any) -> Any:
                return request


def test_abstract_bases_need_no_descriptor() -> None:
    class Base(UnaryContext[Any, Any, Resources], abstract=True):
        pass

    class Concrete(Base):
        method = PING

        async def execute(self, request: Any) -> Any:
            return request

    assert Concrete.rpc_path().endswith("/Ping")


def test_wrong_shape_names_the_right_base() -> None:
    with pytest.raises(ConfigError, match=r"server-streaming RPC; subclass ServerStreamContext"):

        class Bad(UnaryContext[Any, Any, Resources]):
            method = COUNTDOWN

            async def execute(self, request: Any) -> Any:
                return request


def test_streaming_execute_must_be_an_async_generator() -> None:
    with pytest.raises(ConfigError, match=r"async generator"):

        class Bad(ServerStreamContext[Any, Any, Resources]):
            method = COUNTDOWN

            async def execute(self, request: Any) -> Any:  # type: ignore[override]
                return request


def test_missing_execute_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"define `async def execute"):

        class Bad(BidiStreamContext[Any, Any, Resources]):
            method = rpc_method(ping_pb2, "Ping", "Echo")


@pytest.mark.parametrize("limit", [0, -1, 1.5, True])
def test_bad_limits_are_rejected(limit: object) -> None:
    with pytest.raises(ConfigError, match=r"max_in_flight must be a positive int"):

        class Bad(UnaryContext[Any, Any, Resources]):
            method = PING
            max_in_flight = limit  # type: ignore[assignment]

            async def execute(self, request: Any) -> Any:
                return request


def test_subclassing_context_directly_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"subclass UnaryContext"):

        class Bad(Context[Any, Any, Resources]):
            pass


def test_unknown_rpc_names_the_services() -> None:
    with pytest.raises(ConfigError, match=r"no RPC Ping.Nope; its services are \['Ping'\]"):
        rpc_method(ping_pb2, "Ping", "Nope")
