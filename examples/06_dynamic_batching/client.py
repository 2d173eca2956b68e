"""Example 06 client: open-loop siege load on the dynamically batched ONNX model `mlp_onnx`,
then the batches the server formed, read from its ModelStatistics.

make models                                    # builds examples/model_repository's ONNX files
asyncinfer serve --model-repository examples/model_repository --grpc-port 8001
python examples/06_dynamic_batching/client.py 127.0.0.1:8001 --seconds 3 --rate 1500

Each call carries one item (features [1,256]); requests that arrive while the model's instance
is busy are run together (config.pbtxt: dynamic_batching, preferred_batch_size 32), so the
server executes far fewer batches than it answers requests.
"""

from __future__ import annotations

import argparse
import asyncio

import numpy as np

from asyncinfer import rpc_method
from asyncinfer.client import AsyncClient, Constant, Method, Report, Siege
from asyncinfer.pb.inference import grpc_service_pb2 as pb

MODEL = "mlp_onnx"
MODEL_INFER = Method.of(rpc_method(pb, "GRPCInferenceService", "ModelInfer"))
MODEL_STATISTICS = Method.of(rpc_method(pb, "GRPCInferenceService", "ModelStatistics"))


def features_request(seed: int = 0) -> pb.ModelInferRequest:
    features = np.random.default_rng(seed).standard_normal((1, 256)).astype(np.float32)
    request = pb.ModelInferRequest(model_name=MODEL)
    request.inputs.add(name="features", datatype="FP32", shape=features.shape)
    request.raw_input_contents.append(features.tobytes())
    return request


async def run_siege(target: str, seconds: float, rate: float = 1500) -> Report:
    """Open-loop ModelInfer calls on `mlp_onnx` at ``rate`` per second."""
    async with AsyncClient(target, MODEL_INFER) as client:
        siege = Siege(client, Constant(rate), duration=seconds, max_in_flight=256)
        result = await siege.run(features_request())
    return result.report


async def batching_summary(target: str) -> str:
    """Requests answered, batches executed, and how many batches of each size."""
    async with AsyncClient(target, MODEL_STATISTICS) as client:
        reply = await client.call(pb.ModelStatisticsRequest(name=MODEL))
    (stats,) = reply.model_stats
    sizes = ", ".join(
        f"{b.batch_size}x{b.compute_infer.count}"
        for b in sorted(stats.batch_stats, key=lambda b: -b.compute_infer.count)[:6]
    )
    mean = stats.inference_count / stats.execution_count if stats.execution_count else 0.0
    return (
        f"{MODEL}: {stats.inference_count} inferences in {stats.execution_count} executions "
        f"(mean batch {mean:.1f}; most frequent size x count: {sizes})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="HOST:PORT of the inference service")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=1500.0, help="calls per second")
    args = parser.parse_args(argv)
    report = asyncio.run(run_siege(args.target, args.seconds, args.rate))
    print(report.line())
    print(asyncio.run(batching_summary(args.target)))
    return 0 if report.ok and not report.failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
