"""Load client of bench/ensemble.py: one three-stage pipeline per call, closed loop, in three
ways, so their throughputs compare one to one:

- ``ensemble``: one ModelInfer of ensemble_classify (the steps run inside the server);
- ``client_chain``: preprocess, classifier_onnx and postprocess called one after another by
  this client, each over gRPC (intermediate tensors cross the wire twice each way);
- ``glue``: one call to example 04's glue service, which calls its two models over gRPC.

Each pipeline sends one 16-pixel image and checks the first reply at each level. The last
stdout line is one JSON object: ``{"mode", "levels": [{concurrency, throughput, p50_ms, ...}]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tritonclient.grpc.aio as aioclient
from _load_client import Level, _levels
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

import asyncinfer
from asyncinfer.client import AsyncClient, Method
from asyncinfer.errors import RpcError

if TYPE_CHECKING:
    import chain_pb2
else:
    chain_pb2 = asyncinfer.protos.load(Path(__file__).parents[1] / "examples/04_chain/chain.proto")

IMAGE = (np.arange(16, dtype=np.uint8) * 13).reshape(1, 16)
Pipeline = Callable[[], Awaitable[str]]  # returns the predicted label


def _input(name: str, array: np.ndarray, datatype: str) -> InferInput:
    tensor = InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def ensemble(client: aioclient.InferenceServerClient) -> Pipeline:
    inputs = [_input("IMAGE", IMAGE, "UINT8")]

    async def run() -> str:
        result = await client.infer("ensemble_classify", inputs, client_timeout=30.0)
        return str(result.as_numpy("LABEL")[0, 0].decode())

    return run


def client_chain(client: aioclient.InferenceServerClient) -> Pipeline:
    image = [_input("IMAGE", IMAGE, "UINT8")]

    async def run() -> str:
        features = await client.infer("preprocess", image, client_timeout=30.0)
        scores = await client.infer(
            "classifier_onnx",
            [_input("features", features.as_numpy("FEATURES"), "FP32")],
            client_timeout=30.0,
        )
        result = await client.infer(
            "postprocess",
            [_input("SCORES", scores.as_numpy("scores"), "FP32")],
            outputs=[InferRequestedOutput("LABEL"), InferRequestedOutput("PROBABILITIES")],
            client_timeout=30.0,
        )
        return str(result.as_numpy("LABEL")[0, 0].decode())

    return run


def glue(client: AsyncClient) -> Pipeline:
    request = chain_pb2.Images(pixels=IMAGE.tobytes(), batch=1)

    async def run() -> str:
        reply = await client.call(request, timeout=30.0)
        return str(reply.labels[0])

    return run


async def measure(pipeline: Pipeline, level: Level, *, warmup: float, duration: float) -> float:
    begin = time.perf_counter() + warmup
    end = begin + duration
    last_done = begin
    labels: set[str] = set()

    async def worker() -> None:
        nonlocal last_done
        while (now := time.perf_counter()) < end:
            try:
                labels.add(await pipeline())
            except (InferenceServerException, RpcError) as exc:
                level.error(str(exc))
                continue
            done = time.perf_counter()
            if now >= begin:
                level.latencies.append(done - now)
                last_done = max(last_done, done)

    await asyncio.gather(*(worker() for _ in range(level.concurrency)))
    if len(labels) > 1:  # one image: every way must agree on its one label
        level.error(f"the same image got different labels: {sorted(labels)}")
    return last_done - begin


async def run(args: argparse.Namespace) -> dict[str, Any]:
    levels = []
    if args.mode == "glue":
        method = Method.of(
            chain_pb2.DESCRIPTOR.services_by_name["Glue"].methods_by_name["Classify"]
        )
        client: Any = AsyncClient(args.url, method)
        pipeline = glue(client)
    else:
        client = aioclient.InferenceServerClient(args.url)
        pipeline = ensemble(client) if args.mode == "ensemble" else client_chain(client)
    try:
        for concurrency in args.concurrency:
            level = Level(concurrency)
            elapsed = await measure(pipeline, level, warmup=args.warmup, duration=args.duration)
            levels.append(level.summary(elapsed))
    finally:
        await client.close()
    return {"url": args.url, "mode": args.mode, "levels": levels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=("ensemble", "client_chain", "glue"), required=True)
    parser.add_argument("--concurrency", type=_levels, default=[1])
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
