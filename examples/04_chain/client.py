"""Example 04's client: classify a few images through the glue, then a burst of calls.

python examples/04_chain/client.py 127.0.0.1:50060 [--calls 200] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import asyncinfer
from asyncinfer.client import AsyncClient, Method

if TYPE_CHECKING:
    import chain_pb2
else:
    chain_pb2 = asyncinfer.protos.load(Path(__file__).with_name("chain.proto"))

CLASSIFY = Method.of(chain_pb2.DESCRIPTOR.services_by_name["Glue"].methods_by_name["Classify"])


def images(batch: int, seed: int = 0) -> chain_pb2.Images:
    pixels = np.random.default_rng(seed).integers(0, 256, (batch, 16), dtype=np.uint8)
    return chain_pb2.Images(pixels=pixels.tobytes(), batch=batch)


async def run(target: str, calls: int, concurrency: int) -> None:
    async with AsyncClient(target, CLASSIFY, timeout=5.0) as client:
        reply = await client.call(images(4))
        probabilities = np.frombuffer(reply.probabilities, np.float32).reshape(4, 4)
        for label, row in zip(reply.labels, probabilities, strict=True):
            print(f"{label:5s} {np.array2string(row, precision=3)}")
        report = await client.run(lambda i: images(1, i), concurrency=concurrency, count=calls)
        print(report.line())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(run(args.target, args.calls, args.concurrency))


if __name__ == "__main__":
    main()
