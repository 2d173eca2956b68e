"""Example 02: a custom inference service with its own proto, serving an ONNX model.

What a user writes: a Resources that owns the engine (a pool of ONNX Runtime sessions), the
per-request memory stacks and a CPU-pinned thread pool, and one Context per RPC.

Run it:   python examples/02_custom_inference/server.py --port 50052
Call it:  python examples/02_custom_inference/client.py 127.0.0.1:50052
"""

from __future__ import annotations

import argparse
import functools
import pathlib
from typing import TYPE_CHECKING

import numpy as np
from model import FEATURES, ensure_model  # model.py beside this script

import asyncinfer
from asyncinfer import Resources, Server, UnaryContext, rpc_method
from asyncinfer.affinity import CpuSet, PinnedThreadPool
from asyncinfer.engines import OnnxEngine
from asyncinfer.errors import InvalidArgument
from asyncinfer.memory import StackPool

if TYPE_CHECKING:
    import custom_inference_pb2
else:
    custom_inference_pb2 = asyncinfer.protos.load(
        pathlib.Path(__file__).with_name("custom_inference.proto")
    )

MAX_BATCH = 64
DEFAULT_CACHE = pathlib.Path.home() / ".cache" / "asyncinfer" / "examples"


class ClassifierResources(Resources):
    """What every Classify call shares. The constructor only records; start() builds."""

    def __init__(self, model_path: pathlib.Path, *, sessions: int = 2, stacks: int = 16) -> None:
        self.model_path = model_path
        self.sessions = sessions
        self.stack_count = stacks

    async def start(self) -> None:
        cpus = CpuSet.current()  # this worker's CPUs (see affinity.cpus_for_worker for pinning)
        self.threads = PinnedThreadPool(cpus, name="classifier", max_workers=self.sessions)
        self.engine = OnnxEngine(
            "classifier", self.model_path, instances=self.sessions, cpus=cpus, threads=self.threads
        )
        await self.engine.start()
        # Room for one reply's probabilities at the largest batch, aligned, with slack.
        self.stacks = StackPool(count=self.stack_count, host_bytes=64 * 1024, name="classify")
        self.stacks.open()

    async def stop(self) -> None:
        await self.engine.stop()
        self.stacks.close()
        self.threads.close()

    def statistics(self) -> dict[str, object]:
        return {"engine": self.engine.statistics(), "stacks": self.stacks.statistics()}


class Classify(
    UnaryContext[
        custom_inference_pb2.ClassifyRequest,
        custom_inference_pb2.ClassifyReply,
        ClassifierResources,
    ]
):
    method = rpc_method(custom_inference_pb2, "Classifier", "Classify")
    max_in_flight = 256

    async def execute(
        self, request: custom_inference_pb2.ClassifyRequest
    ) -> custom_inference_pb2.ClassifyReply:
        features = _features(request)
        async with self.resources.stacks.acquire(timeout=5.0) as lease:
            outputs = await self.resources.engine.infer({"features": features}, memory=lease.item)
            probabilities = outputs.pop("probabilities")  # a view into the leased stack
            reply = custom_inference_pb2.ClassifyReply(
                probabilities=probabilities.tobytes(), labels=probabilities.argmax(axis=1).tolist()
            )
            del probabilities  # views must be gone before the lease returns and the stack resets
        return reply


def _features(request: custom_inference_pb2.ClassifyRequest) -> np.ndarray:
    """A zero-copy float32 view of the request's features, or InvalidArgument saying why."""
    batch = request.batch
    if not 1 <= batch <= MAX_BATCH:
        raise InvalidArgument(f"batch is {batch}; it must be 1..{MAX_BATCH}")
    expected = batch * FEATURES * 4
    if len(request.features) != expected:
        raise InvalidArgument(
            f"features has {len(request.features)} bytes; batch {batch} x {FEATURES} float32 "
            f"needs {expected}"
        )
    return np.frombuffer(request.features, dtype="<f4").reshape(batch, FEATURES)


def build(
    model_path: pathlib.Path, host: str = "127.0.0.1", port: int = 0, workers: int = 1
) -> Server:
    """The server factory; each worker process calls it to build its own server."""
    server = Server(host=host, port=port, workers=workers, reuse_port=workers > 1)
    server.add_service(ClassifierResources(model_path), Classify)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50052, help="0 picks a free port")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--cache-dir",
        type=pathlib.Path,
        default=DEFAULT_CACHE,
        help="where the generated ONNX model is kept",
    )
    args = parser.parse_args(argv)
    model_path = ensure_model(args.cache_dir)
    return asyncinfer.serve(
        functools.partial(build, model_path, args.host, args.port, args.workers)
    )


if __name__ == "__main__":
    raise SystemExit(main())
