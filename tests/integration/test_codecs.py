"""FlatBuffers, raw and user codecs on a real server: our clients, the CLI, reflection and
health drive them; malformed buffers are INVALID_ARGUMENT naming the field, and the server
keeps serving."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from asyncinfer import codecs
from asyncinfer.client import AsyncClient, Constant, Method, Siege, SyncClient
from asyncinfer.client.reflection import resolve_method
from asyncinfer.errors import InvalidArgument
from asyncinfer.testing import running

from ..codec_services import JSON, Blob, Json, Raw, TensorStream, build, echo_pb2
from ..codec_services import Tensors as TensorsContext
from ..unit.codecs.test_tensor_malformed import CASES, valid

ROOT = Path(__file__).parents[2]
TENSORS = Method.of(TensorsContext)
ECHO = echo_pb2.DESCRIPTOR.services_by_name["Echo"]
# The Tensors method as a raw client sees it: any payload, framed in Blob.data.
TENSORS_RAW = Method.of(ECHO.methods_by_name["Tensors"], codec=codecs.RAW)


@pytest.fixture
async def address() -> AsyncIterator[str]:
    async with running(build()) as address:
        yield address


def sample() -> dict[str, np.ndarray]:
    return {"x": np.arange(12, dtype="<f4").reshape(3, 4), "ids": np.array([1, 2], "<i8")}


async def test_async_client_round_trips_tensors(address: str) -> None:
    async with AsyncClient(address, TENSORS) as client:
        reply = await client.call(sample())
        doubled = await client.call({**sample(), "double": np.zeros(0, "u1")})
    assert list(reply) == ["x", "ids"]
    np.testing.assert_array_equal(reply["x"], sample()["x"])
    np.testing.assert_array_equal(doubled["x"], sample()["x"] * 2)
    assert doubled["ids"].dtype == np.dtype("<i8")


async def test_sync_client_and_siege_drive_the_flatbuffers_method(address: str) -> None:
    def sync_calls() -> list[dict[str, np.ndarray]]:
        with SyncClient(address, TENSORS) as client:
            return [client.call(sample()) for _ in range(3)]

    replies = await asyncio.to_thread(sync_calls)
    assert all(np.array_equal(r["x"], sample()["x"]) for r in replies)
    async with AsyncClient(address, TENSORS) as client:
        result = await Siege(client, Constant(40), duration=0.5).run(sample())
    assert result.report.ok > 0 and result.report.failed == 0


async def test_bidirectional_flatbuffers_stream(address: str) -> None:
    async with AsyncClient(address, Method.of(TensorStream)) as client:
        replies = await client.call([{"a": np.full(3, i, "<i4")} for i in range(4)])
    assert [int(r["a"][0]) for r in replies] == [0, 1, 2, 3]


async def test_raw_protobuf_and_user_codecs(address: str) -> None:
    async with AsyncClient(address, Method.of(Raw)) as client:
        assert bytes(await client.call(b"ping")) == b"ping!"
    async with AsyncClient(address, Method.of(ECHO.methods_by_name["Bytes"])) as client:
        assert (await client.call(Blob(data=b"pb"))).data == b"pb"
    async with AsyncClient(address, Method.of(Json)) as client:
        assert await client.call({"n": 1}) == {"echo": {"n": 1}}
    # A protobuf-only client calls a FlatBuffers method: it sees Blob, a bytes field.
    flat = codecs.FLATBUFFERS.bind(Blob.DESCRIPTOR)
    payload = flat.encode(sample())[codecs.HEADER_BYTES :]
    async with AsyncClient(address, Method.of(ECHO.methods_by_name["Tensors"])) as client:
        reply = await client.call(Blob(data=payload))
    np.testing.assert_array_equal(flat.decode(reply.SerializeToString())["x"], sample()["x"])


async def test_malformed_buffers_are_invalid_argument_naming_the_field(address: str) -> None:
    async with AsyncClient(address, TENSORS_RAW) as client:
        for case, (patch, expected) in CASES.items():
            buf = valid()
            patch(buf)
            with pytest.raises(InvalidArgument) as caught:
                await client.call(bytes(buf))
            prefix = "/asyncinfer.tests.codecs.Echo/Tensors: bad request: "
            assert caught.value.message.startswith(prefix), case
            assert caught.value.message[len(prefix) :] == _first_match(expected, buf), case
        good = await client.call(bytes(valid()))  # the server keeps serving
    assert len(good) > 8


def _first_match(expected: str, buf: bytearray) -> str:
    from asyncinfer.codecs._tensor_read import read_tensors

    with pytest.raises(InvalidArgument, match=expected) as caught:
        read_tensors(memoryview(bytes(buf)))
    return caught.value.message


async def test_bytes_that_are_not_the_carrier_message(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary("/asyncinfer.tests.codecs.Echo/Tensors")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(b"\x10\x01", timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "must hold only its bytes field asyncinfer.tests.codecs.Blob.data" in str(
        caught.value.details()
    )


async def test_reflection_and_health_see_the_flatbuffers_service(address: str) -> None:
    method = await asyncio.to_thread(
        resolve_method, address, "/asyncinfer.tests.codecs.Echo/Tensors"
    )
    assert method.request_type.DESCRIPTOR.full_name == "asyncinfer.tests.codecs.Blob"
    async with AsyncClient(address, method.with_codec(codecs.FLATBUFFERS)) as client:
        reply = await client.call(sample())
    np.testing.assert_array_equal(reply["ids"], [1, 2])
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        check = await stub.Check(
            health_pb2.HealthCheckRequest(service="asyncinfer.tests.codecs.Echo")
        )
    assert check.status == health_pb2.HealthCheckResponse.SERVING


async def _cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asyncinfer.cli", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_cli_encodes_a_json_request_through_the_codec(address: str) -> None:
    request = {"tensors": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1, 2]}]}
    code, out, err = await _cli(
        "sync", address, "/asyncinfer.tests.codecs.Echo/Tensors", "--codec", "flatbuffers",
        "--request", json.dumps(request), "--count", "20",
    )  # fmt: skip
    assert code == 0, err
    assert "[sync] 20/20 ok" in out
    code, out, err = await _cli(
        "async", address, "/asyncinfer.tests.codecs.Echo/Json", "--codec",
        "tests.codec_services:JSON", "--request", '{"a": 1}', "--count", "20",
    )  # fmt: skip
    assert code == 0, err
    assert "20/20 ok" in out
    assert JSON.name == "json"


async def test_cli_says_when_the_request_or_codec_does_not_fit(address: str) -> None:
    bad = {"tensors": [{"name": "x", "datatype": "FP32", "shape": [3], "data": [1]}]}
    code, _out, err = await _cli(
        "sync", address, "/asyncinfer.tests.codecs.Echo/Tensors", "--codec", "flatbuffers",
        "--request", json.dumps(bad), "--count", "1",
    )  # fmt: skip
    assert code == 2
    assert (
        "--request does not fit asyncinfer.tests.codecs.Blob: tensors[0]: data does not fit" in err
    )
