"""Example 04: "Model A -> glue -> Model B" (trtlab's chaining pattern) built from Contexts.

Three services, each its own Server (in production, its own process or machine):

- Model A (``ModelA/Featurize``): uint8 images -> normalized float32 features (numpy).
- Model B (``ModelB/Score``): features -> class scores, an ONNX classifier on ONNX Runtime.
- The glue (``Glue/Classify``): calls Model A, then Model B, through pooled channels, and
  turns the scores into softmax probabilities and labels itself.

The glue passes its caller's deadline downstream (``self.call.time_remaining()``), so a call
that must be answered in 200 ms never waits 5 s on Model A; and a client that cancels its call
to the glue cancels the glue's call in flight to Model A or B as well (grpc.aio cancels an RPC
whose awaiting task is cancelled). The computation mirrors the ensemble_classify model of
examples/model_repository, so bench/ensemble.py can put the two side by side.
"""

from __future__ import annotations

import asyncio
import pathlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import asyncinfer
from asyncinfer import Resources, Server, UnaryContext, rpc_method
from asyncinfer.client import ChannelPool, Method
from asyncinfer.engines import OnnxEngine
from asyncinfer.errors import InvalidArgument

if TYPE_CHECKING:
    import chain_pb2
else:
    chain_pb2 = asyncinfer.protos.load(Path(__file__).with_name("chain.proto"))

PIXELS = 16
CLASSES = 4
MAX_BATCH = 64
LABELS = ("cat", "dog", "bird", "fish")
REPOSITORY = pathlib.Path(__file__).resolve().parents[1] / "model_repository"
CLASSIFIER = REPOSITORY / "classifier_onnx" / "1" / "model.onnx"


def _rows(data: bytes, batch: int, width: int, dtype: type, what: str) -> np.ndarray:
    """``data`` as a (batch, width) array; InvalidArgument saying what was expected."""
    if not 1 <= batch <= MAX_BATCH:
        raise InvalidArgument(f"batch must be 1..{MAX_BATCH}, not {batch}")
    expected = batch * width * np.dtype(dtype).itemsize
    if len(data) != expected:
        raise InvalidArgument(
            f"{what}: expected {expected} bytes ({batch} x {width} {np.dtype(dtype).name}), "
            f"got {len(data)}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(batch, width)


# ------------------------------------------------------------------ Model A


class ModelAResources(Resources):
    """Counts Featurize calls that were cancelled while running (for the tests and the demo)."""

    def __init__(self) -> None:
        self.cancelled = 0
        self.started = 0


class Featurize(UnaryContext[chain_pb2.Images, chain_pb2.Features, ModelAResources]):
    method = rpc_method(chain_pb2, "ModelA", "Featurize")
    max_in_flight = 256

    async def execute(self, request: chain_pb2.Images) -> chain_pb2.Features:
        pixels = _rows(request.pixels, request.batch, PIXELS, np.uint8, "pixels")
        self.resources.started += 1
        try:
            if request.model_a_delay_ms:
                await asyncio.sleep(request.model_a_delay_ms / 1000)
        except asyncio.CancelledError:
            self.resources.cancelled += 1
            raise
        features = (pixels.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(
            0.25
        )
        return chain_pb2.Features(
            values=features.tobytes(),
            batch=request.batch,
            deadline_remaining_s=self.call.time_remaining() or 0.0,
        )


# ------------------------------------------------------------------ Model B


class ModelBResources(Resources):
    """The ONNX classifier (one ORT session on its own thread)."""

    def __init__(self, model_path: pathlib.Path = CLASSIFIER) -> None:
        self.model_path = model_path

    async def start(self) -> None:
        self.engine = OnnxEngine("classifier", self.model_path)
        await self.engine.start()

    async def stop(self) -> None:
        await self.engine.stop()


class Score(UnaryContext[chain_pb2.Features, chain_pb2.Scores, ModelBResources]):
    method = rpc_method(chain_pb2, "ModelB", "Score")
    max_in_flight = 256

    async def execute(self, request: chain_pb2.Features) -> chain_pb2.Scores:
        features = _rows(request.values, request.batch, PIXELS, np.float32, "features")
        outputs = await self.resources.engine.infer({"features": features})
        scores = np.ascontiguousarray(outputs["scores"], dtype=np.float32)
        return chain_pb2.Scores(values=scores.tobytes(), batch=request.batch)


# ------------------------------------------------------------------ the glue

FEATURIZE = Method.of(Featurize)
SCORE = Method.of(Score)


class GlueResources(Resources):
    """Pooled channels to Model A and Model B, opened in the server's loop."""

    def __init__(self, model_a: str, model_b: str, *, channels: int = 4) -> None:
        self.model_a = ChannelPool(model_a, size=channels)
        self.model_b = ChannelPool(model_b, size=channels)

    async def start(self) -> None:
        await self.model_a.open()
        await self.model_b.open()

    async def stop(self) -> None:
        await self.model_a.close()
        await self.model_b.close()

    def statistics(self) -> dict[str, object]:
        return {"model_a": self.model_a.statistics(), "model_b": self.model_b.statistics()}


class Classify(UnaryContext[chain_pb2.Images, chain_pb2.Classification, GlueResources]):
    method = rpc_method(chain_pb2, "Glue", "Classify")
    max_in_flight = 256

    async def execute(self, request: chain_pb2.Images) -> chain_pb2.Classification:
        # Every downstream call gets what is left of our caller's deadline, not a fresh one.
        features = await self.resources.model_a.call(
            FEATURIZE, request, timeout=self.call.time_remaining()
        )
        scores = await self.resources.model_b.call(
            SCORE,
            chain_pb2.Features(values=features.values, batch=features.batch),
            timeout=self.call.time_remaining(),
        )
        rows = _rows(scores.values, scores.batch, CLASSES, np.float32, "scores from Model B")
        shifted = np.exp(rows - rows.max(axis=1, keepdims=True))
        probabilities = (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
        return chain_pb2.Classification(
            probabilities=probabilities.tobytes(),
            labels=[LABELS[i] for i in probabilities.argmax(axis=1)],
            model_a_deadline_remaining_s=features.deadline_remaining_s,
        )


# ------------------------------------------------------------------ server factories


def build_model_a(host: str = "127.0.0.1", port: int = 0, **options: object) -> Server:
    server = Server(host=host, port=port, **options)  # type: ignore[arg-type]
    server.add_service(ModelAResources(), Featurize)
    return server


def build_model_b(host: str = "127.0.0.1", port: int = 0, **options: object) -> Server:
    server = Server(host=host, port=port, **options)  # type: ignore[arg-type]
    server.add_service(ModelBResources(), Score)
    return server


def build_glue(
    model_a: str, model_b: str, host: str = "127.0.0.1", port: int = 0, **options: object
) -> Server:
    server = Server(host=host, port=port, **options)  # type: ignore[arg-type]
    server.add_service(GlueResources(model_a, model_b), Classify)
    return server
