"""The codec tests' echo service: one method per codec, a user-defined codec among them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from asyncinfer import BidiStreamContext, Resources, Server, UnaryContext, codecs, rpc_method
from asyncinfer.errors import InvalidArgument, UsageError

echo_pb2 = grpc.protos("tests/codec_echo.proto")  # type: ignore[attr-defined]
Blob = echo_pb2.Blob


class JsonCodec(codecs.PayloadCodec):
    """A codec of the user's own: JSON documents in the carrier's bytes field."""

    name = "json"

    def decode_payload(self, payload: memoryview) -> Any:
        try:
            return json.loads(bytes(payload))
        except ValueError as exc:
            raise InvalidArgument(f"the payload is not JSON ({exc})") from None

    def encode_payload(self, value: Any) -> Sequence[codecs.BytesLike]:
        return (json.dumps(value).encode(),)

    def payload_from_json(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise UsageError(f"a JSON echo request is an object, not {value!r}")
        return value


JSON = JsonCodec()


class Tensors(UnaryContext[codecs.Tensors, codecs.Tensors, Resources]):
    method = rpc_method(echo_pb2, "Echo", "Tensors")
    codec = codecs.FLATBUFFERS

    async def execute(self, request: codecs.Tensors) -> codecs.Tensors:
        if "double" in request:
            return {name: array * 2 for name, array in request.items() if name != "double"}
        return request  # the received views, written once into the reply


class TensorStream(BidiStreamContext[codecs.Tensors, codecs.Tensors, Resources]):
    method = rpc_method(echo_pb2, "Echo", "TensorStream")
    codec = codecs.FLATBUFFERS

    async def execute(self, requests: AsyncIterator[codecs.Tensors]) -> AsyncIterator[Any]:
        async for request in requests:
            yield request


class Raw(UnaryContext[memoryview, Any, Resources]):
    method = rpc_method(echo_pb2, "Echo", "Raw")
    codec = codecs.RAW

    async def execute(self, request: memoryview) -> Any:
        return [request, b"!"]  # pieces, joined once


class Bytes(UnaryContext[Any, Any, Resources]):
    method = rpc_method(echo_pb2, "Echo", "Bytes")

    async def execute(self, request: Any) -> Any:
        return Blob(data=request.data)


class Json(UnaryContext[Any, Any, Resources]):
    method = rpc_method(echo_pb2, "Echo", "Json")
    codec = JSON

    async def execute(self, request: Any) -> Any:
        return {"echo": request}


def build(port: int = 0) -> Server:
    server = Server(host="127.0.0.1", port=port)
    server.add_service(Resources(), Tensors, TensorStream, Raw, Bytes, Json)
    return server
