"""Where the FlatBuffers codec's cost over protobuf goes in a real call loop, at one size.

bench/payload_codecs.py measures throughput; this probe splits it. It starts
bench/_codecs_server.py (the same identity service) and, from one client process, makes
sequential calls in interleaved rounds of these cases:

- ``protobuf``, ``flatbuffers``, ``raw``: the three methods, called as payload_codecs calls them;
- ``raw+encode``, ``raw+decode``, ``raw+frombuffer``: raw calls, each with one piece of the
  FlatBuffers client's work done beside it (encoding the request message, decoding a reply
  message, one ``np.frombuffer`` over a reply), so that each piece is timed as it costs inside
  the loop, caches full of gRPC's work, not in a hot micro-loop.

The server tunes its heap (asyncinfer.memory.host_heap), as every process ``asyncinfer.serve``
runs does; ``--tuned-heap`` tunes this client's too (``tune_host_heap``), which no client does
by itself.

Run: .venv/bin/python bench/_codecs_probe.py [--size 16384] [--calls 3000] [--rounds 6]
     [--tuned-heap]
The last stdout line is one JSON object: per case the median wall and client CPU µs per call
and the rounds, and ``extra_vs_raw_us`` (each case's median wall time over raw's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
from _codecs_client import METHODS, request
from _codecs_server import identity_pb2
from _harness import BUILD, serving
from payload_codecs import SERVER

from asyncinfer import codecs
from asyncinfer.client import AsyncClient
from asyncinfer.memory.host_heap import tune_host_heap

CASES = ("protobuf", "flatbuffers", "raw", "raw+encode", "raw+decode", "raw+frombuffer")


async def _measure(address: str, size: int, calls: int, rounds: int) -> dict[str, Any]:
    clients = {codec: AsyncClient(address, METHODS[codec], timeout=60.0) for codec in METHODS}
    for client in clients.values():
        await client.__aenter__()
    try:
        messages = {codec: request(codec, size) for codec in METHODS}
        carried = codecs.FLATBUFFERS.bind(identity_pb2.Payload.DESCRIPTOR)
        reply = carried.encode(messages["flatbuffers"])
        offset = len(reply) - size  # the data vector ends the message
        raw, raw_message = clients["raw"], messages["raw"]

        def plain(codec: str) -> Callable[[], Awaitable[Any]]:
            return lambda: clients[codec].call(messages[codec])

        def beside(work: Callable[[], object]) -> Callable[[], Awaitable[Any]]:
            async def call() -> Any:
                work()
                return await raw.call(raw_message)

            return call

        cases: dict[str, Callable[[], Awaitable[Any]]] = {
            **{codec: plain(codec) for codec in METHODS},
            "raw+encode": beside(lambda: carried.encode(messages["flatbuffers"])),
            "raw+decode": beside(lambda: carried.decode(reply)),
            "raw+frombuffer": beside(lambda: np.frombuffer(reply, np.uint8, size, offset)),
        }
        for _ in range(3):  # the reader's layout cache admits a size at its second sighting
            carried.decode(reply)
        samples: dict[str, list[tuple[float, float]]] = {case: [] for case in CASES}
        for round_ in range(rounds):
            order = CASES[round_ % len(CASES) :] + CASES[: round_ % len(CASES)]
            for case in order:
                call = cases[case]
                for _ in range(max(calls // 10, 1)):  # unrecorded
                    await call()
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(calls):
                    await call()
                samples[case].append(
                    ((time.perf_counter() - wall) / calls * 1e6,
                     (time.process_time() - cpu) / calls * 1e6)
                )  # fmt: skip
    finally:
        for client in clients.values():
            await client.__aexit__(None, None, None)
    result: dict[str, Any] = {}
    for case, rows in samples.items():
        result[case] = {
            "wall_us": round(statistics.median(w for w, _ in rows), 1),
            "cpu_us": round(statistics.median(c for _, c in rows), 1),
            "rounds_wall_us": [round(w, 1) for w, _ in rows],
        }
    raw_wall = result["raw"]["wall_us"]
    result["extra_vs_raw_us"] = {
        case: round(result[case]["wall_us"] - raw_wall, 1) for case in CASES if case != "raw"
    }
    return result


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16 << 10, help="payload bytes")
    parser.add_argument("--calls", type=int, default=3000, help="calls per case per round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tuned-heap", action="store_true", help="tune this client's heap too")
    args = parser.parse_args(argv)
    if args.tuned_heap:
        tune_host_heap()
    with serving([SERVER], BUILD / "bench-logs" / "codecs_probe") as running:
        result = asyncio.run(_measure(running["asyncinfer"].address, args.size, args.calls,
                                      args.rounds))  # fmt: skip
    for case in CASES:
        figures = result[case]
        print(f"{case:15} wall {figures['wall_us']:8.1f} µs/call  client CPU "
              f"{figures['cpu_us']:8.1f} µs/call", flush=True)  # fmt: skip
    result.update(size=args.size, calls=args.calls, rounds=args.rounds, tuned_heap=args.tuned_heap)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
