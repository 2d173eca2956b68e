"""Example 08: example 02's classifier served with FlatBuffers requests and replies, beside its
protobuf form, on one server.

Both RPCs share example 02's Resources (the ONNX Runtime session pool). The FlatBuffers form
declares ``codec = codecs.FLATBUFFERS``: ``execute`` receives a dict of numpy arrays viewing
the received message (no copy) and returns a dict of arrays, each written once into the reply.
Compare example 02's protobuf form, which copies features out of and probabilities into
protobuf ``bytes`` fields.

Run it:   python examples/08_flatbuffers/server.py --port 50058
Call it:  python examples/08_flatbuffers/client.py 127.0.0.1:50058
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import pathlib
import sys
from types import ModuleType

import grpc

import asyncinfer
from asyncinfer import Server, UnaryContext, codecs, rpc_method
from asyncinfer.errors import InvalidArgument

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # grpc.protos finds the .proto on sys.path
flat_classifier_pb2 = grpc.protos("flat_classifier.proto")  # type: ignore[attr-defined]


def _example_02() -> ModuleType:
    """Example 02's server module (its Resources and protobuf Context), loaded by path."""
    folder = HERE.parent / "02_custom_inference"
    sys.path.insert(0, str(folder))  # its `from model import ...`
    spec = importlib.util.spec_from_file_location("custom_inference_server", folder / "server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


example_02 = _example_02()
ClassifierResources = example_02.ClassifierResources
MAX_BATCH = example_02.MAX_BATCH


class FlatClassify(UnaryContext[codecs.Tensors, codecs.Tensors, ClassifierResources]):
    method = rpc_method(flat_classifier_pb2, "FlatClassifier", "Classify")
    codec = codecs.FLATBUFFERS
    max_in_flight = 256

    async def execute(self, request: codecs.Tensors) -> codecs.Tensors:
        features = request.get("features")
        if features is None or len(request) != 1:
            raise InvalidArgument(f"send one tensor, 'features'; got {sorted(request)}")
        if features.ndim != 2 or not 1 <= features.shape[0] <= MAX_BATCH:
            raise InvalidArgument(
                f"features has shape {list(features.shape)}; it must be [batch, 16] with batch "
                f"1..{MAX_BATCH}"
            )
        # The engine checks names, dtypes and the feature count; its outputs are new arrays
        # that the reply owns (no memory-stack lease to outlive), written once by the codec.
        outputs = await self.resources.engine.infer({"features": features})
        probabilities = outputs["probabilities"]
        return {"probabilities": probabilities, "labels": probabilities.argmax(axis=1)}


def build(
    model_path: pathlib.Path, host: str = "127.0.0.1", port: int = 0, workers: int = 1
) -> Server:
    """Both forms of the classifier on one server, sharing one Resources."""
    server = Server(host=host, port=port, workers=workers, reuse_port=workers > 1)
    resources = ClassifierResources(model_path)
    server.add_service(resources, example_02.Classify)
    server.add_service(resources, FlatClassify)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50058, help="0 picks a free port")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--cache-dir",
        type=pathlib.Path,
        default=example_02.DEFAULT_CACHE,
        help="where the generated ONNX model is kept",
    )
    args = parser.parse_args(argv)
    model_path = example_02.ensure_model(args.cache_dir)
    return asyncinfer.serve(
        functools.partial(build, model_path, args.host, args.port, args.workers)
    )


if __name__ == "__main__":
    raise SystemExit(main())
