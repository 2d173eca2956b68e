"""Example 02 client: drive the inference service with the InferRunner API and the siege client.

asyncinfer serve --model-repository examples/model_repository --grpc-port 8001
python examples/05_inference_client/client.py 127.0.0.1:8001 --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np

from asyncinfer import rpc_method
from asyncinfer.client import AsyncClient, Constant, LatencyRecorder, Method, Report, Siege
from asyncinfer.client.remote import RemoteManager
from asyncinfer.errors import RpcError
from asyncinfer.pb.inference import grpc_service_pb2 as pb

MODEL_INFER = Method.of(rpc_method(pb, "GRPCInferenceService", "ModelInfer"))
A = np.arange(16, dtype=np.int32).reshape(1, 16)
B = np.ones((1, 16), dtype=np.int32)


def simple_request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="simple")
    for name, array in (("INPUT0", A), ("INPUT1", B)):
        request.inputs.add(name=name, datatype="INT32", shape=array.shape)
        request.raw_input_contents.append(array.tobytes())
    return request


async def run_runner(target: str, seconds: float, concurrency: int = 16) -> Report:
    """InferRunner calls on `simple`, ``concurrency`` in flight; every answer is checked."""
    recorder = LatencyRecorder()
    deadline = time.monotonic() + seconds
    async with RemoteManager(target) as manager:
        runner = manager.infer_runner("simple")

        async def worker() -> None:
            while time.monotonic() < deadline:
                start = time.perf_counter()
                try:
                    outputs = await runner.infer(INPUT0=A, INPUT1=B)
                except RpcError as exc:
                    recorder.failure(exc)
                    continue
                if not np.array_equal(outputs["OUTPUT0"], A + B):
                    recorder.failure(ValueError("wrong OUTPUT0"))
                    continue
                recorder.success(time.perf_counter() - start)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return recorder.report(f"runner x{concurrency}")


async def run_siege(target: str, seconds: float, rate: float = 500) -> Report:
    """Open-loop ModelInfer calls on `simple` at ``rate`` per second."""
    async with AsyncClient(target, MODEL_INFER) as client:
        siege = Siege(client, Constant(rate), duration=seconds, max_in_flight=512)
        result = await siege.run(simple_request())
    return result.report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="HOST:PORT of the inference service")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    reports = [
        asyncio.run(run_runner(args.target, args.seconds)),
        asyncio.run(run_siege(args.target, args.seconds)),
    ]
    for report in reports:
        print(report.line())
    return 0 if all(r.ok and not r.failed for r in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())
