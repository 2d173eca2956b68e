"""The examples' own protos, loaded the way users load theirs (asyncinfer.protos)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import asyncinfer

EXAMPLES = Path(__file__).parents[1] / "examples"
PING_PROTO = EXAMPLES / "01_ping" / "ping.proto"
CUSTOM_INFERENCE_PROTO = EXAMPLES / "02_custom_inference" / "custom_inference.proto"
PREPROCESS_PROTO = EXAMPLES / "03_shm_preprocess" / "preprocess.proto"
CHAIN_PROTO = EXAMPLES / "04_chain" / "chain.proto"

if TYPE_CHECKING:
    import chain_pb2 as chain_pb2
    import custom_inference_pb2 as custom_inference_pb2
    import ping_pb2 as ping_pb2
    import ping_pb2_grpc as ping_pb2_grpc
    import preprocess_pb2 as preprocess_pb2
else:
    ping_pb2 = asyncinfer.protos.load(PING_PROTO)
    ping_pb2_grpc = asyncinfer.protos.load_grpc(PING_PROTO)
    custom_inference_pb2 = asyncinfer.protos.load(CUSTOM_INFERENCE_PROTO)
    preprocess_pb2 = asyncinfer.protos.load(PREPROCESS_PROTO)
    chain_pb2 = asyncinfer.protos.load(CHAIN_PROTO)

__all__ = [
    "CHAIN_PROTO",
    "CUSTOM_INFERENCE_PROTO",
    "PING_PROTO",
    "PREPROCESS_PROTO",
    "chain_pb2",
    "custom_inference_pb2",
    "ping_pb2",
    "ping_pb2_grpc",
    "preprocess_pb2",
]
