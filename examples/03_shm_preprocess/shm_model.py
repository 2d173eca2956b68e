"""Example 03, the model service: one Infer RPC for co-located (SysV shm) and remote callers.

Inputs arrive as an ``asyncinfer.Tensor``: inline bytes, or a reference into the caller's SysV
segment that is read in place through the Resources' attach cache. When the request names an
output reference, the result is written into the caller's shared memory and the reply carries
only the reference; otherwise the result comes back inline, hand-framed.

Run it:   python examples/03_shm_preprocess/shm_model.py --port 50061
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

import asyncinfer
from asyncinfer import Resources, Server, UnaryContext, rpc_method
from asyncinfer.errors import InvalidArgument
from asyncinfer.shm import SysvAttachments
from asyncinfer.shm.tensors import framed_tensor_message, read_tensor, write_tensor

if TYPE_CHECKING:
    import preprocess_pb2 as preprocess_pb2  # re-exported: bench/shm.py imports it from here
else:
    preprocess_pb2 = asyncinfer.protos.load(Path(__file__).with_name("preprocess.proto"))

CLASSES = 10
MiB = 1 << 20


def _classify(batch: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    if batch.ndim != 4 or batch.shape[1] != 3 or batch.dtype != np.float32:
        raise InvalidArgument(
            f"classify: expected FP32 [N, 3, H, W], got {batch.dtype} {list(batch.shape)}"
        )
    weights = np.random.default_rng(3).standard_normal((3, CLASSES)).astype(np.float32)
    logits = batch.mean(axis=(2, 3)) @ weights
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    scores: npt.NDArray[np.float32] = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return scores


def _identity(batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return batch


MODELS: dict[str, Callable[[npt.NDArray[Any]], npt.NDArray[Any]]] = {
    "classify": _classify,
    "identity": _identity,
}


class ModelResources(Resources):
    """The attach cache of callers' SysV segments, detached when the service stops."""

    def __init__(self, max_segments: int = 64) -> None:
        self.max_segments = max_segments
        self.attachments: SysvAttachments | None = None

    async def start(self) -> None:
        self.attachments = SysvAttachments(max_segments=self.max_segments)

    async def stop(self) -> None:
        if self.attachments is not None:
            self.attachments.close()

    def statistics(self) -> dict[str, Any]:
        return self.attachments.statistics() if self.attachments else {}


class Infer(UnaryContext[preprocess_pb2.InferRequest, preprocess_pb2.InferReply, ModelResources]):
    method = rpc_method(preprocess_pb2, "Model", "Infer")
    max_in_flight = 64

    async def execute(  # type: ignore[override]  # a reply, or bytes framed by hand
        self, request: preprocess_pb2.InferRequest
    ) -> preprocess_pb2.InferReply | bytes:
        model = MODELS.get(request.model)
        if model is None:
            raise InvalidArgument(
                f"unknown model {request.model!r}; expected one of {list(MODELS)}"
            )
        attachments = self.resources.attachments
        with read_tensor(request.input, attachments, "input") as batch:
            # The view may be the caller's shared memory: the result is written (the one copy)
            # before the lease ends, so nothing refers to it after this block.
            result = model(batch)
            if request.HasField("output"):
                return preprocess_pb2.InferReply(
                    output=write_tensor(result, request.output, attachments)
                )
            return framed_tensor_message(1, result)


def build(host: str = "127.0.0.1", port: int = 0) -> Server:
    server = Server(
        host=host, port=port, max_receive_message_bytes=64 * MiB, max_send_message_bytes=64 * MiB
    )
    server.add_service(ModelResources(), Infer)
    return server


async def serve(server: Server) -> None:
    """Serve until SIGINT or SIGTERM, then stop gracefully (Resources remove their segments)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    port = await server.start()
    print(f"listening on {server.config.host}:{port}", flush=True)
    try:
        await stopping.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50061, help="0 picks a free port")
    args = parser.parse_args(argv)
    asyncio.run(serve(build(args.host, args.port)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
