"""The baseline: a bare grpc.aio server speaking the Triton protocol subset the benchmarks need.

It serves `simple` (INT32 add/sub on [B, 16], max_batch_size 8; also as `triton_add_sub`) and
`custom_identity_int32` (INT32 [B, -1]) with plain protobuf serialization, using tritonclient's
generated modules so it shares no code with asyncinfer. It is what "the same work without a
framework" costs, and the benchmarks report asyncinfer as a ratio of it.

Run: python bench/_bare_triton.py --port 0   (prints "bare_triton listening on HOST:PORT")
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import signal
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import numpy as np
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

INT32_MAX = 2**31 - 1
Arrays = dict[str, np.ndarray]
Ctx = grpc.aio.ServicerContext[Any, Any]
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Model:
    name: str
    max_batch_size: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dims: tuple[int, ...]  # per-tensor dims without the batch dimension; -1 is any size
    compute: Callable[[Arrays], Arrays]


def _simple(inputs: Arrays) -> Arrays:
    a, b = inputs["INPUT0"], inputs["INPUT1"]
    return {"OUTPUT0": a + b, "OUTPUT1": a - b}


def _identity(inputs: Arrays) -> Arrays:
    return {"OUTPUT0": inputs["INPUT0"]}


MODELS = {
    m.name: m
    for m in (
        Model("simple", 8, ("INPUT0", "INPUT1"), ("OUTPUT0", "OUTPUT1"), (16,), _simple),
        # bench/python_backend.py's add_sub model: the same work under its name there.
        Model("triton_add_sub", 8, ("INPUT0", "INPUT1"), ("OUTPUT0", "OUTPUT1"), (16,), _simple),
        Model("custom_identity_int32", 1024, ("INPUT0",), ("OUTPUT0",), (-1,), _identity),
    )
}


class Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _model(name: str, version: str) -> Model:
    model = MODELS.get(name)
    if model is None:
        raise Abort(grpc.StatusCode.NOT_FOUND, f"Request for unknown model: '{name}' is not found")
    if version not in ("", "1"):
        raise Abort(grpc.StatusCode.NOT_FOUND, f"model '{name}' has no version '{version}'")
    return model


def _check_shape(model: Model, name: str, shape: tuple[int, ...]) -> None:
    expected = len(model.dims) + 1
    if len(shape) != expected or not 1 <= shape[0] <= model.max_batch_size:
        raise Abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input '{name}' of '{model.name}': shape {list(shape)}, expected "
            f"[1..{model.max_batch_size}] + {list(model.dims)}",
        )
    for got, want in zip(shape[1:], model.dims, strict=True):
        if want != -1 and got != want:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"input '{name}': dims {list(shape)}")


def _input_arrays(model: Model, request: pb.ModelInferRequest) -> Arrays:
    arrays: Arrays = {}
    for index, tensor in enumerate(request.inputs):
        if tensor.name not in model.inputs:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown input '{tensor.name}'")
        if tensor.datatype != "INT32":
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"input '{tensor.name}' must be INT32")
        shape = tuple(tensor.shape)
        _check_shape(model, tensor.name, shape)
        if index < len(request.raw_input_contents):
            array = np.frombuffer(request.raw_input_contents[index], dtype="<i4")
        else:
            array = np.asarray(tensor.contents.int_contents, dtype=np.int32)
        if array.size != math.prod(shape):
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input '{tensor.name}': {array.size} elements for shape {list(shape)}",
            )
        arrays[tensor.name] = array.reshape(shape)
    missing = [name for name in model.inputs if name not in arrays]
    if missing:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"missing inputs {missing}")
    return arrays


def infer(request: pb.ModelInferRequest) -> pb.ModelInferResponse:
    model = _model(request.model_name, request.model_version)
    results = model.compute(_input_arrays(model, request))
    wanted = [output.name for output in request.outputs] or list(model.outputs)
    response = pb.ModelInferResponse(model_name=model.name, model_version="1", id=request.id)
    for name in wanted:
        if name not in results:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown output '{name}'")
        array = results[name]
        response.outputs.add(name=name, datatype="INT32", shape=array.shape)
        response.raw_output_contents.append(array.astype("<i4", copy=False).tobytes())
    return response


def metadata(model: Model) -> pb.ModelMetadataResponse:
    def tensors(names: tuple[str, ...]) -> list[pb.ModelMetadataResponse.TensorMetadata]:
        shape = [-1, *model.dims]
        return [
            pb.ModelMetadataResponse.TensorMetadata(name=n, datatype="INT32", shape=shape)
            for n in names
        ]

    return pb.ModelMetadataResponse(
        name=model.name,
        versions=["1"],
        platform="bare",
        inputs=tensors(model.inputs),
        outputs=tensors(model.outputs),
    )


def config(model: Model) -> mc.ModelConfig:
    return mc.ModelConfig(
        name=model.name,
        platform="bare",
        max_batch_size=model.max_batch_size,
        input=[
            mc.ModelInput(name=n, data_type=mc.TYPE_INT32, dims=model.dims) for n in model.inputs
        ],
        output=[
            mc.ModelOutput(name=n, data_type=mc.TYPE_INT32, dims=model.dims) for n in model.outputs
        ],
    )


class Service(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]  # untyped
    """Every handler is a plain coroutine; Abort becomes the status it carries."""

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Ctx
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Ctx
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=True)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Ctx
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name="bare_triton", version="0", extensions=[])

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Ctx
    ) -> pb.ModelReadyResponse:
        ready = request.name in MODELS and request.version in ("", "1")
        return pb.ModelReadyResponse(ready=ready)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Ctx
    ) -> pb.ModelMetadataResponse:
        return await _guard(context, lambda: metadata(_model(request.name, request.version)))

    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: Ctx
    ) -> pb.ModelConfigResponse:
        return await _guard(
            context,
            lambda: pb.ModelConfigResponse(config=config(_model(request.name, request.version))),
        )

    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: Ctx
    ) -> pb.ModelStatisticsResponse:
        # The baseline keeps no statistics: one empty entry per model asked for.
        def stats() -> pb.ModelStatisticsResponse:
            names = [_model(request.name, request.version).name] if request.name else list(MODELS)
            entries = [pb.ModelStatistics(name=n, version="1") for n in names]
            return pb.ModelStatisticsResponse(model_stats=entries)

        return await _guard(context, stats)

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Ctx
    ) -> pb.ModelInferResponse:
        return await _guard(context, lambda: infer(request))


async def _guard(context: Ctx, work: Callable[[], T]) -> T:
    try:
        return work()
    except Abort as error:
        await context.abort(error.code, error.message)
        raise AssertionError("unreachable: abort raises") from error


async def serve(host: str, port: int) -> None:
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", INT32_MAX),
            ("grpc.max_send_message_length", INT32_MAX),
            ("grpc.so_reuseport", 0),
        ]
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Service(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    print(f"bare_triton listening on {host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(grace=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop; uvloop by default, as asyncinfer uses it when installed",
    )
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(serve(args.host, args.port))
    else:
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
