"""balanced_target: how the addresses a user gives become one gRPC target and its LB options;
routing_metadata: the sticky-sequence header of inference requests."""

from __future__ import annotations

import json

import pytest

from asyncinfer.client.channel import balanced_target
from asyncinfer.client.routing import SEQUENCE_HEADER, routing_metadata
from asyncinfer.errors import UsageError
from asyncinfer.pb.inference import grpc_service_pb2 as pb
from asyncinfer.pb.ping_pb2 import PingRequest


def _policy(options: list[tuple[str, object]]) -> str | None:
    configs = [json.loads(str(value)) for key, value in options if key == "grpc.service_config"]
    return next(iter(configs[0]["loadBalancingConfig"][0])) if configs else None


def test_one_address_is_passed_through_without_balancing() -> None:
    assert balanced_target("127.0.0.1:8001") == ("127.0.0.1:8001", [])
    assert balanced_target(["localhost:8001"]) == ("localhost:8001", [])


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        (["127.0.0.1:1", "127.0.0.1:2"], "ipv4:127.0.0.1:1,127.0.0.1:2"),
        ("10.0.0.1:8001, 10.0.0.2:8001", "ipv4:10.0.0.1:8001,10.0.0.2:8001"),
        (("[::1]:1", "[::1]:2"), "ipv6:[::1]:1,[::1]:2"),
    ],
)
def test_several_addresses_get_round_robin(targets: object, expected: str) -> None:
    target, options = balanced_target(targets)  # type: ignore[arg-type]
    assert target == expected
    assert _policy(options) == "round_robin"


def test_a_dns_name_gets_round_robin() -> None:
    target, options = balanced_target("dns:///asyncinfer-headless.default.svc:8001")
    assert target == "dns:///asyncinfer-headless.default.svc:8001"
    assert _policy(options) == "round_robin"


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (["host-a:1", "127.0.0.1:2"], r"must be IP addresses, not 'host-a'.*dns:///host-a:1"),
        (["127.0.0.1:1", "[::1]:2"], "all IPv4 or all IPv6"),
        (["127.0.0.1", "127.0.0.1:2"], "is not HOST:PORT"),
        (["dns:///a:1", "127.0.0.1:2"], "stands alone"),
        (["::1:5", "127.0.0.1:2"], "brackets"),
        ([], "no target address"),
        (" , ", "no target address"),
    ],
)
def test_bad_targets_say_what_is_expected(targets: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        balanced_target(targets)  # type: ignore[arg-type]


def _infer(**parameters: pb.InferParameter) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="simple_sequence")
    for name, value in parameters.items():
        request.parameters[name].CopyFrom(value)
    return request


def test_sequence_requests_carry_the_routing_header() -> None:
    numbered = _infer(sequence_id=pb.InferParameter(int64_param=42))
    named = _infer(sequence_id=pb.InferParameter(string_param="user-7"))
    assert routing_metadata(numbered) == ((SEQUENCE_HEADER, "42"),)
    assert routing_metadata(named) == ((SEQUENCE_HEADER, "user-7"),)


def test_other_requests_carry_none() -> None:
    assert routing_metadata(_infer()) is None
    assert routing_metadata(_infer(sequence_id=pb.InferParameter(int64_param=0))) is None
    assert routing_metadata(_infer(priority=pb.InferParameter(uint64_param=1))) is None
    assert routing_metadata(PingRequest()) is None
    assert routing_metadata([_infer(sequence_id=pb.InferParameter(int64_param=1))]) is None
