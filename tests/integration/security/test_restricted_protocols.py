"""tritonserver's --grpc-restricted-protocol: protocol groups that need a key header, checked
with tritonclient (headers=...) on unary calls, streams and gRPC health checking."""

from __future__ import annotations

import contextlib
import functools
import queue
from collections.abc import Callable

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from asyncinfer.errors import ConfigError
from asyncinfer.restriction import GRPC_PROTOCOLS, PROTOCOLS, RestrictedGroup, Restrictions
from asyncinfer.server import Server

from ..inference.inference_servers import ThreadedServer

ADMIN = "This protocol is restricted, expecting header 'triton-grpc-protocol-admin-key'"
INFER = "This protocol is restricted, expecting header 'triton-grpc-protocol-infer-key'"


def _refused(call: Callable[[], object]) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call()
    assert caught.value.status() == "StatusCode.UNAVAILABLE"
    return caught.value


def test_restricted_protocols_need_their_header(
    inference_server: Callable[..., Callable[[], Server]],
) -> None:
    restrictions = Restrictions.parse(
        [
            "model-config,model-repository,statistics,shared-memory:admin-key=s3cret",
            "inference:infer-key=infer-value",
        ]
    )
    admin = {"triton-grpc-protocol-admin-key": "s3cret"}
    infer = {"triton-grpc-protocol-infer-key": "infer-value"}
    with (
        ThreadedServer(inference_server(restrictions=restrictions)) as address,
        grpcclient.InferenceServerClient(address) as client,
    ):
        assert client.is_server_live()  # health and metadata are not restricted here
        assert client.get_model_metadata("simple").name == "simple"
        assert ADMIN in _refused(lambda: client.get_model_config("simple")).message()
        assert ADMIN in _refused(lambda: client.get_model_repository_index()).message()
        wrong = {"triton-grpc-protocol-admin-key": "guess"}
        assert (
            ADMIN
            in _refused(lambda: client.get_inference_statistics("simple", headers=wrong)).message()
        )
        # The right key opens its own group only.
        assert client.get_model_config("simple", headers=admin).config.name == "simple"
        assert INFER in _refused(lambda: _infer(client, admin)).message()
        _infer(client, infer)
        assert (
            ADMIN
            in _refused(lambda: client.unregister_system_shared_memory(headers=infer)).message()
        )


def test_a_restricted_stream_is_refused_at_once(
    inference_server: Callable[..., Callable[[], Server]],
) -> None:
    restrictions = Restrictions.parse(["inference:infer-key=v"])
    with ThreadedServer(inference_server(restrictions=restrictions)) as address:
        for headers, expected in ((None, INFER), ({"triton-grpc-protocol-infer-key": "v"}, None)):
            results: queue.Queue[object] = queue.Queue()
            with grpcclient.InferenceServerClient(address) as client:
                client.start_stream(functools.partial(_put, results), headers=headers)
                # The refusal may end the stream before this request is even sent.
                with contextlib.suppress(InferenceServerException):
                    client.async_stream_infer("simple", _inputs())
                answer = results.get(timeout=10)
                client.stop_stream()
            if expected is None:
                assert not isinstance(answer, Exception)
            else:
                assert isinstance(answer, InferenceServerException)
                assert expected in answer.message()


def test_grpc_health_checking_belongs_to_health(
    inference_server: Callable[..., Callable[[], Server]],
) -> None:
    restrictions = Restrictions.parse(["health:k=v"])
    with (
        ThreadedServer(inference_server(restrictions=restrictions)) as address,
        grpc.insecure_channel(address) as channel,
    ):
        stub = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "triton-grpc-protocol-k" in str(refused.value.details())
        ok = stub.Check(health_pb2.HealthCheckRequest(), metadata=[("triton-grpc-protocol-k", "v")])
        assert ok.status == health_pb2.HealthCheckResponse.SERVING


def test_restriction_flags_are_checked_like_tritonservers() -> None:
    with pytest.raises(ConfigError, match="protocol 'health' can not be specified in multiple"):
        Restrictions.parse(["model-repository,health:k1=v1", "metadata,health:k2=v2"])
    with pytest.raises(ConfigError, match="unknown restricted protocol 'model-reposit'"):
        RestrictedGroup.parse("model-reposit,health:k1=v1")
    with pytest.raises(ConfigError, match="must look like"):
        RestrictedGroup.parse("health")
    # Every protocol names at least one RPC, and every RPC of the table a known protocol.
    assert set(GRPC_PROTOCOLS.values()) == set(PROTOCOLS)


def _put(results: queue.Queue[object], result: object, error: object) -> None:
    results.put(error or result)


def _inputs() -> list[grpcclient.InferInput]:
    data = np.ones((1, 16), np.int32)
    inputs = [grpcclient.InferInput(n, [1, 16], "INT32") for n in ("INPUT0", "INPUT1")]
    for tensor in inputs:
        tensor.set_data_from_numpy(data)
    return inputs


def _infer(client: grpcclient.InferenceServerClient, headers: dict[str, str]) -> None:
    result = client.infer("simple", _inputs(), headers=headers)
    assert result.as_numpy("OUTPUT0").tolist() == [[2] * 16]
