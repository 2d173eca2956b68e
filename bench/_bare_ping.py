"""The baseline for bench/ping.py: a bare grpc.aio server doing the ping service's unary work
with the generated servicer and no asyncinfer code at all (example 01's ping.proto is loaded
with grpc's own ``grpc.protos_and_services``). It runs on uvloop, as asyncinfer does,
so that the comparison measures the framework and not the event loop (``--loop asyncio`` for the
stock loop)."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    import ping_pb2
    import ping_pb2_grpc
else:  # grpc finds ping.proto relative to an entry of sys.path
    sys.path.append(str(Path(__file__).parents[1] / "examples" / "01_ping"))
    ping_pb2, ping_pb2_grpc = grpc.protos_and_services("ping.proto")


class BarePing(ping_pb2_grpc.PingServicer):
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.sequence = itertools.count()

    async def Ping(self, request: ping_pb2.PingRequest, context: object) -> ping_pb2.PingReply:
        if request.delay_us:
            await asyncio.sleep(request.delay_us / 1e6)
        return ping_pb2.PingReply(
            payload=request.payload, pid=self.pid, sequence=next(self.sequence)
        )


async def main(port: int) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    # Only Ping is measured; the servicer answers the other RPCs UNIMPLEMENTED.
    ping_pb2_grpc.add_PingServicer_to_server(BarePing(), server)  # type: ignore[abstract]
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"bare ping serving on 127.0.0.1:{bound}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main(args.port))
    else:
        asyncio.run(main(args.port))
