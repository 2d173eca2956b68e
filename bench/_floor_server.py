"""The floor of bench/infer_large.py: a grpc.aio server whose ModelInfer answers pre-framed bytes
and does no other work.

ModelInfer reads nothing of the request but its length: the reply to a request of a given size
is framed once, from the first such request (bench/_bare_triton.py's answer to it: an
identity's inputs as its outputs, add/sub's sum and difference), and every later request of
that size gets the same bytes back (the load clients send one request over and over). What a
request costs this server is grpc.aio receiving the message and sending the reply: the least
any Python gRPC server can spend per request, and the figure asyncinfer's CPU per request is
compared with (``cpu_vs_floor``). The other RPCs the load client and perf_analyzer call (readiness,
metadata, config, statistics) are bench/_bare_triton.py's.

Run: python bench/_floor_server.py --port 0   (prints "floor_server listening on HOST:PORT")
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import grpc
from _bare_triton import INT32_MAX, Service, infer
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

SERVICE = "inference.GRPCInferenceService"


class Replies:
    """The framed reply per request size, made from the first request of that size."""

    def __init__(self) -> None:
        self._by_size: dict[int, bytes] = {}

    def reply(self, raw: bytes) -> bytes:
        framed = self._by_size.get(len(raw))
        if framed is None:
            reply = infer(pb.ModelInferRequest.FromString(raw))
            framed = self._by_size[len(raw)] = reply.SerializeToString()
        return framed


async def serve(host: str, port: int) -> None:
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", INT32_MAX),
            ("grpc.max_send_message_length", INT32_MAX),
            ("grpc.so_reuseport", 0),
        ]
    )
    replies = Replies()

    async def model_infer(raw: bytes, context: Any) -> bytes:
        return replies.reply(raw)

    # Looked up first: ModelInfer takes and returns bytes (no (de)serializer); the rest of the
    # service is the bare server's.
    infer = grpc.unary_unary_rpc_method_handler(model_infer)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"ModelInfer": infer}),)
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Service(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    print(f"floor_server listening on {host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(grace=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
