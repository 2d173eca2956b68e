"""Example 03, the whole pipeline: one model service, two preprocessing services, one client.

Starts the model service and two preprocessing services in front of it, one handing tensors
over through SysV shared memory and one through inline bytes, each in its own process on a free
port, then classifies the same random images through both and checks that they agree.

Run it:   python examples/03_shm_preprocess/pipeline.py [--calls 20] [--batch 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import pathlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import numpy as np

import asyncinfer
from asyncinfer.shm.tensors import read_tensor

if TYPE_CHECKING:
    import preprocess_pb2
else:
    preprocess_pb2 = asyncinfer.protos.load(Path(__file__).with_name("preprocess.proto"))

HERE = pathlib.Path(__file__).parent


@contextlib.asynccontextmanager
async def service(script: str, *args: str) -> AsyncIterator[str]:
    """Run an example service on a free port; yields its address."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / script), "--port", "0", *args, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        if not line.startswith(b"listening on "):
            raise RuntimeError(f"{script} did not start: {line!r}")
        yield line.split()[-1].decode()
    finally:
        process.terminate()
        await process.wait()


def random_images(count: int, seed: int) -> list[bytes]:
    from shm_preprocess import encode_ppm

    rng = np.random.default_rng(seed)
    return [encode_ppm(rng.integers(0, 256, (64, 64, 3), np.uint8)) for _ in range(count)]


async def classify(address: str, images: list[bytes], calls: int) -> tuple[np.ndarray, float]:
    from shm_preprocess import Classify

    async with grpc.aio.insecure_channel(address) as channel:
        stub = channel.unary_unary(
            Classify.rpc_path(),
            request_serializer=preprocess_pb2.ClassifyRequest.SerializeToString,
            response_deserializer=preprocess_pb2.ClassifyReply.FromString,
        )
        request = preprocess_pb2.ClassifyRequest(images=images)
        await stub(request, timeout=30)  # warm up: connections, threads, the first attach
        start = time.perf_counter()
        for _ in range(calls):
            reply = await stub(request, timeout=30)
        elapsed = time.perf_counter() - start
    with read_tensor(reply.scores, None) as scores:
        return scores.copy(), elapsed / calls


async def run(calls: int, batch: int) -> dict[str, float]:
    sys.path.insert(0, str(HERE))
    images = random_images(batch, seed=1)
    results = {}
    async with service("shm_model.py") as model:
        for transport in ("shm", "bytes"):
            async with service(
                "shm_preprocess.py", "--model", model, "--transport", transport
            ) as front:
                scores, latency = await classify(front, images, calls)
                results[transport] = scores
                print(f"{transport:5}: {latency * 1e3:.2f} ms per batch of {batch}", flush=True)
    np.testing.assert_allclose(results["shm"], results["bytes"], rtol=1e-5)
    print("top classes:", results["shm"].argmax(axis=1).tolist())
    return {"agree": 1.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args.calls, args.batch))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
