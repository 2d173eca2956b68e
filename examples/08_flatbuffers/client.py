"""Example 08 client: classify a batch with both forms of the classifier (protobuf and
FlatBuffers), check they agree, then hold the FlatBuffers form under a siege.

python examples/08_flatbuffers/client.py 127.0.0.1:50058 --batch 8 --rate 300 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import sys

import grpc
import numpy as np

from asyncinfer import codecs
from asyncinfer.client import AsyncClient, Constant, Method, Report, Siege
from asyncinfer.pb import custom_inference_pb2
from asyncinfer.pb.custom_inference_pb2 import ClassifyRequest

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
flat_classifier_pb2 = grpc.protos("flat_classifier.proto")  # type: ignore[attr-defined]

PROTOBUF_CLASSIFY = Method.of(
    custom_inference_pb2.DESCRIPTOR.services_by_name["Classifier"].methods_by_name["Classify"]
)
# The client names the codec: the .proto says only that the messages hold one bytes field.
FLAT_CLASSIFY = Method.of(
    flat_classifier_pb2.DESCRIPTOR.services_by_name["FlatClassifier"].methods_by_name["Classify"],
    codec=codecs.FLATBUFFERS,
)
FEATURES, CLASSES = 16, 4


def features(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, FEATURES)).astype("<f4")


async def classify_both(target: str, batch: int) -> np.ndarray:
    """Both forms on the same features; their answers must agree."""
    x = features(batch)
    async with AsyncClient(target, FLAT_CLASSIFY) as flat:
        reply = await flat.call({"features": x})  # arrays in, views over the reply out
    async with AsyncClient(target, PROTOBUF_CLASSIFY) as proto:
        proto_reply = await proto.call(ClassifyRequest(features=x.tobytes(), batch=batch))
    from_proto = np.frombuffer(proto_reply.probabilities, "<f4").reshape(batch, CLASSES)
    np.testing.assert_allclose(reply["probabilities"], from_proto, rtol=1e-6)
    assert reply["labels"].tolist() == list(proto_reply.labels)
    print(
        f"labels {reply['labels'].tolist()}; row sums "
        f"{np.round(reply['probabilities'].sum(axis=1), 4)}; protobuf form agrees"
    )
    return reply["probabilities"]


async def siege(target: str, batch: int, rate: float, seconds: float) -> Report:
    async with AsyncClient(target, FLAT_CLASSIFY) as client:
        run = Siege(client, Constant(rate), duration=seconds, max_in_flight=256)
        result = await run.run({"features": features(batch)})
    return result.report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="HOST:PORT of the example 08 server")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rate", type=float, default=300.0, help="siege rate, calls/s")
    parser.add_argument("--seconds", type=float, default=5.0, help="siege duration")
    args = parser.parse_args(argv)
    asyncio.run(classify_both(args.target, args.batch))
    report = asyncio.run(siege(args.target, args.batch, args.rate, args.seconds))
    print(report.line())
    return 0 if report.ok and not report.failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
