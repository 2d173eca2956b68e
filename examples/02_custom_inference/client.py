"""Example 02 client: classify a few batches, then hold the service under a siege.

python examples/02_custom_inference/client.py 127.0.0.1:50052 --batch 8 --rate 300 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import asyncinfer
from asyncinfer.client import AsyncClient, Constant, Method, Report, Siege

if TYPE_CHECKING:
    import custom_inference_pb2
else:
    custom_inference_pb2 = asyncinfer.protos.load(
        Path(__file__).with_name("custom_inference.proto")
    )

CLASSIFY = Method.of(
    custom_inference_pb2.DESCRIPTOR.services_by_name["Classifier"].methods_by_name["Classify"]
)
FEATURES, CLASSES = 16, 4


def request(batch: int, seed: int = 0) -> tuple[custom_inference_pb2.ClassifyRequest, np.ndarray]:
    features = np.random.default_rng(seed).standard_normal((batch, FEATURES)).astype("<f4")
    return custom_inference_pb2.ClassifyRequest(features=features.tobytes(), batch=batch), features


async def classify_once(target: str, batch: int) -> np.ndarray:
    async with AsyncClient(target, CLASSIFY) as client:
        reply = await client.call(request(batch)[0])
    probabilities = np.frombuffer(reply.probabilities, dtype="<f4").reshape(batch, CLASSES)
    print(f"labels {list(reply.labels)}; row sums {np.round(probabilities.sum(axis=1), 4)}")
    return probabilities


async def siege(target: str, batch: int, rate: float, seconds: float) -> Report:
    async with AsyncClient(target, CLASSIFY) as client:
        run = Siege(client, Constant(rate), duration=seconds, max_in_flight=256)
        result = await run.run(request(batch)[0])
    return result.report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="HOST:PORT of the classifier")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rate", type=float, default=300.0, help="siege rate, calls/s")
    parser.add_argument("--seconds", type=float, default=5.0, help="siege duration")
    args = parser.parse_args(argv)
    asyncio.run(classify_once(args.target, args.batch))
    report = asyncio.run(siege(args.target, args.batch, args.rate, args.seconds))
    print(report.line())
    return 0 if report.ok and not report.failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
