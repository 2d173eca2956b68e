"""A Context of a custom service calling a model in process through its Resources: no gRPC hop,
the model's own checks and statistics, errors as statuses."""

from __future__ import annotations

import numpy as np
import pytest

from asyncinfer import Resources, Server, UnaryContext, rpc_method
from asyncinfer.client import AsyncClient, Method
from asyncinfer.errors import InvalidArgument
from asyncinfer.inference.inprocess import ModelCaller
from asyncinfer.inference.repository.repository import ModelRepository
from asyncinfer.testing import running
from tests.protos import ping_pb2

from .inference_servers import REPOSITORY


class ModelsResources(Resources):
    """Owns a repository of models loaded into this process, and the call API over it."""

    def __init__(self) -> None:
        self.repository = ModelRepository(
            REPOSITORY, control_mode="explicit", load_models=["simple"]
        )
        self.models = ModelCaller(self.repository)

    async def start(self) -> None:
        await self.repository.start()

    async def stop(self) -> None:
        await self.repository.stop()


class Double(UnaryContext[ping_pb2.PingRequest, ping_pb2.PingReply, ModelsResources]):
    """payload: 16 little-endian int32 -> their doubles, computed by `simple` (x + x)."""

    method = rpc_method(ping_pb2, "Ping", "Ping")

    async def execute(self, request: ping_pb2.PingRequest) -> ping_pb2.PingReply:
        x = np.frombuffer(request.payload, dtype="<i4").reshape(1, -1)
        outputs = await self.resources.models.infer(
            "simple", {"INPUT0": x, "INPUT1": x}, outputs=["OUTPUT0"]
        )
        return ping_pb2.PingReply(payload=outputs["OUTPUT0"].tobytes())


async def test_a_context_calls_a_model_in_process() -> None:
    resources = ModelsResources()
    server = Server()
    server.add_service(resources, Double)
    async with running(server) as address, AsyncClient(address, Method.of(Double)) as client:
        x = np.arange(16, dtype="<i4")
        reply = await client.call(ping_pb2.PingRequest(payload=x.tobytes()))
        np.testing.assert_array_equal(np.frombuffer(reply.payload, "<i4"), 2 * x)
        assert resources.models.is_ready("simple") and not resources.models.is_ready("nope")
        with pytest.raises(InvalidArgument, match=r"input 'INPUT0' for model 'simple'.*\[1, 3\]"):
            await client.call(ping_pb2.PingRequest(payload=np.zeros(3, "<i4").tobytes()))
        stats = resources.repository.get("simple").stats
        assert (stats.success.count, stats.fail.count) == (1, 1)
