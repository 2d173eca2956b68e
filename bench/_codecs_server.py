"""The identity service bench/codecs.py measures: one echo method per codec (protobuf bytes
field, FlatBuffers tensor message, hand-framed raw bytes), served by one asyncinfer server.

    .venv/bin/python bench/_codecs_server.py --port 0
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

import grpc

import asyncinfer
from asyncinfer import Resources, Server, UnaryContext, codecs, rpc_method

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
identity_pb2 = grpc.protos("codec_identity.proto")  # type: ignore[attr-defined]
MiB = 1 << 20


class ProtobufIdentity(UnaryContext[Any, Any, Resources]):
    method = rpc_method(identity_pb2, "Identity", "Protobuf")

    async def execute(self, request: Any) -> Any:
        return identity_pb2.Payload(data=request.data)


class FlatBuffersIdentity(UnaryContext[codecs.Tensors, codecs.Tensors, Resources]):
    method = rpc_method(identity_pb2, "Identity", "FlatBuffers")
    codec = codecs.FLATBUFFERS

    async def execute(self, request: codecs.Tensors) -> codecs.Tensors:
        return request  # views over the request, written once into the reply


class RawIdentity(UnaryContext[memoryview, memoryview, Resources]):
    method = rpc_method(identity_pb2, "Identity", "Raw")
    codec = codecs.RAW

    async def execute(self, request: memoryview) -> memoryview:
        return request


def build(port: int) -> Server:
    server = Server(
        host="127.0.0.1", port=port,
        max_receive_message_bytes=64 * MiB, max_send_message_bytes=64 * MiB,
    )  # fmt: skip
    server.add_service(Resources(), ProtobufIdentity, FlatBuffersIdentity, RawIdentity)
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    return asyncinfer.serve(functools.partial(build, args.port))


if __name__ == "__main__":
    raise SystemExit(main())
