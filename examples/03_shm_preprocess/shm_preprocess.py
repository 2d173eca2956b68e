"""Example 03, the preprocessing service: decode and normalize images, classify them remotely.

Classify takes a batch of binary PPM images, decodes and normalizes them into one FP32
[N, 3, H, W] tensor and asks the model service to classify it. With ``--transport shm`` (the
services are co-located) the tensor is written straight into a slot of this service's SysV ring
and only a descriptor travels; the scores come back through the same slot. With
``--transport bytes`` the same tensor travels inline, as it would to a remote model service.

Run it:   python examples/03_shm_preprocess/shm_preprocess.py --port 50062 \\
              --model 127.0.0.1:50061 --transport shm
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import grpc
import numpy as np
import numpy.typing as npt
from shm_model import CLASSES, Infer, MiB, serve

import asyncinfer
from asyncinfer import Resources, Server, UnaryContext, rpc_method
from asyncinfer.errors import InvalidArgument, from_status
from asyncinfer.shm import SysvRing
from asyncinfer.shm.sysv import ALIGNMENT
from asyncinfer.shm.tensors import (
    framed_tensor_message,
    inline_tensor,
    read_tensor,
    shm_ref,
    shm_tensor,
)

if TYPE_CHECKING:
    import preprocess_pb2 as preprocess_pb2  # re-exported: tests use it from here
else:
    preprocess_pb2 = asyncinfer.protos.load(Path(__file__).with_name("preprocess.proto"))

Transport = Literal["shm", "bytes"]
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
_PPM_HEADER = re.compile(rb"P6\s+(?:#[^\n]*\n\s*)*(\d+)\s+(\d+)\s+(\d+)\s")


def encode_ppm(image: npt.NDArray[np.uint8]) -> bytes:
    """A binary PPM of an [H, W, 3] uint8 image (what a client sends)."""
    height, width, _ = image.shape
    return b"P6\n%d %d\n255\n" % (width, height) + image.tobytes()


def decode_ppm(data: bytes, index: int, size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    match = _PPM_HEADER.match(data)
    if match is None or match.group(3) != b"255":
        raise InvalidArgument(f"image {index}: not a binary PPM (P6) with maxval 255")
    width, height = int(match.group(1)), int(match.group(2))
    if (height, width) != size:
        raise InvalidArgument(f"image {index}: {width}x{height}; expected {size[1]}x{size[0]}")
    pixels = data[match.end() :]
    if len(pixels) != height * width * 3:
        raise InvalidArgument(
            f"image {index}: {len(pixels)} pixel bytes; expected {height * width * 3}"
        )
    return np.frombuffer(pixels, np.uint8).reshape(height, width, 3)


def normalize_into(images: list[npt.NDArray[np.uint8]], out: npt.NDArray[np.float32]) -> None:
    """Write the normalized NCHW batch into ``out`` (shared memory or a plain array)."""
    scale = (1 / (255 * STD))[:, None, None]
    shift = (MEAN / STD)[:, None, None]
    for image, target in zip(images, out, strict=True):
        np.multiply(image.transpose(2, 0, 1), scale, out=target)
        target -= shift


class PreprocessResources(Resources):
    """The channel to the model service, the SysV ring, and a thread pool for decoding."""

    def __init__(
        self,
        model_address: str,
        transport: Transport = "shm",
        *,
        image_size: tuple[int, int] = (64, 64),
        max_batch: int = 32,
        ring_segments: int = 4,
    ) -> None:
        if transport not in ("shm", "bytes"):
            raise ValueError(f"transport must be 'shm' or 'bytes', not {transport!r}")
        self.model_address = model_address
        self.transport: Transport = transport
        self.image_size = image_size
        self.max_batch = max_batch
        self.ring_segments = ring_segments
        self.ring: SysvRing | None = None
        self._channel: grpc.aio.Channel | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def slot_bytes(self, batch: int) -> int:
        height, width = self.image_size
        return _align(batch * 3 * height * width * 4) + batch * CLASSES * 4

    async def start(self) -> None:
        options = [("grpc.max_send_message_length", 64 * MiB)]
        options.append(("grpc.max_receive_message_length", 64 * MiB))
        self._channel = grpc.aio.insecure_channel(self.model_address, options=options)
        self._pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="decode")
        if self.transport == "shm":
            self.ring = SysvRing(self.slot_bytes(self.max_batch), self.ring_segments).open()

    async def stop(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
        if self._pool is not None:
            self._pool.shutdown()
        if self.ring is not None:
            self.ring.close()

    async def run(self, fn: Any, *args: Any) -> Any:
        assert self._pool is not None
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def infer(self, request: bytes, deadline: float | None) -> preprocess_pb2.InferReply:
        """Call the model service with an already-serialized preprocess_pb2.InferRequest."""
        assert self._channel is not None
        call = self._channel.unary_unary(
            Infer.rpc_path(),
            request_serializer=None,  # the request is already bytes
            response_deserializer=preprocess_pb2.InferReply.FromString,
        )
        try:
            return await call(request, timeout=deadline)  # type: ignore[no-any-return]
        except grpc.aio.AioRpcError as exc:
            raise from_status(exc.code(), f"model service: {exc.details()}") from None

    def statistics(self) -> dict[str, Any]:
        return self.ring.statistics() if self.ring else {}


def _align(value: int) -> int:
    return -(-value // ALIGNMENT) * ALIGNMENT


class Classify(
    UnaryContext[preprocess_pb2.ClassifyRequest, preprocess_pb2.ClassifyReply, PreprocessResources]
):
    method = rpc_method(preprocess_pb2, "Preprocess", "Classify")
    max_in_flight = 16

    async def execute(
        self, request: preprocess_pb2.ClassifyRequest
    ) -> preprocess_pb2.ClassifyReply:
        res = self.resources
        count = len(request.images)
        if not 0 < count <= res.max_batch:
            raise InvalidArgument(f"send 1..{res.max_batch} images per call, not {count}")
        images = [decode_ppm(data, i, res.image_size) for i, data in enumerate(request.images)]
        shape = (count, 3, *res.image_size)
        if res.ring is None:
            scores = await self._over_bytes(images, shape)
        else:
            scores = await self._over_shm(res.ring, images, shape)
        return preprocess_pb2.ClassifyReply(scores=inline_tensor(scores), transport=res.transport)

    async def _over_bytes(
        self, images: list[npt.NDArray[np.uint8]], shape: tuple[int, ...]
    ) -> npt.NDArray[np.float32]:
        batch = np.empty(shape, np.float32)
        await self.resources.run(normalize_into, images, batch)
        request = preprocess_pb2.InferRequest(model="classify").SerializeToString()
        reply = await self.resources.infer(
            request + framed_tensor_message(2, batch), self.call.time_remaining()
        )
        with read_tensor(reply.output, None, "model output") as scores:
            return scores.copy()

    async def _over_shm(
        self, ring: SysvRing, images: list[npt.NDArray[np.uint8]], shape: tuple[int, ...]
    ) -> npt.NDArray[np.float32]:
        count = shape[0]
        async with asyncio.timeout(self.call.time_remaining()):
            slot = await ring.allocate(self.resources.slot_bytes(count))
        # The slot holds the batch and, after it, the scores; it is released on every path,
        # cancellation included, and only after the model service has answered.
        with slot:
            batch_bytes = int(np.prod(shape)) * 4
            await self.resources.run(normalize_into, images, slot.array(np.float32, shape))
            request = preprocess_pb2.InferRequest(
                model="classify",
                input=shm_tensor(slot.part(0, batch_bytes), np.float32, shape),
                output=shm_ref(slot.part(_align(batch_bytes), count * CLASSES * 4)),
            )
            await self.resources.infer(request.SerializeToString(), self.call.time_remaining())
            return slot.array(np.float32, (count, CLASSES), offset=_align(batch_bytes)).copy()


def build(
    model_address: str, transport: Transport = "shm", host: str = "127.0.0.1", port: int = 0
) -> Server:
    server = Server(host=host, port=port, max_receive_message_bytes=64 * MiB)
    server.add_service(PreprocessResources(model_address, transport), Classify)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50062, help="0 picks a free port")
    parser.add_argument("--model", required=True, help="the model service's host:port")
    parser.add_argument("--transport", choices=["shm", "bytes"], default="shm")
    args = parser.parse_args(argv)
    asyncio.run(serve(build(args.model, args.transport, args.host, args.port)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
