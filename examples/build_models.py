"""Builds the example repositories' ONNX models (random weights, fixed seeds; nothing downloaded).

    .venv/bin/python examples/build_models.py          # `make models`; `make install` runs it

Writes ``<repository>/<model>/1/model.onnx`` for:

- densenet_onnx: Triton's image-classification signature, data_0 FP32 [3,224,224] ->
  fc6_1 FP32 [1000], as a small convolutional net (max_batch_size 0);
- inception_onnx (model-control repository): input FP32 [299,299,3] (NHWC) ->
  InceptionV3/Predictions/Softmax FP32 [1001];
- mlp_onnx: a deep MLP, features FP32 [batch,256] -> scores FP32 [batch,16], 96 layers of 384
  units (56 MB of weights). One item is bound by reading the weights, so a batch reads them
  once for all its rows: here one item takes about 5 ms and a batch of 32 about 10 ms, which is
  what dynamic batching exploits;
- classifier_onnx: the middle step of ensemble_classify and example 04's Model B, a small MLP
  features FP32 [batch,16] -> Gemm 32 -> ReLU -> Gemm -> scores FP32 [batch,4].

A model whose file exists and was built from the same recipe (``model.onnx.recipe`` beside it)
is left alone, so the build is cheap to repeat. The files are not committed (.gitignore).
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
MAIN = HERE / "model_repository"
EXPLICIT = HERE / "model_repository_explicit"
OPSET = 17
MLP_WIDTH = 384
MLP_LAYERS = 96
MLP_INPUT = 256
MLP_OUTPUT = 16


def _model(graph: Any) -> bytes:
    from onnx import checker, helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    checker.check_model(model)
    return bytes(model.SerializeToString())


def _weight(rng: np.random.Generator, name: str, shape: tuple[int, ...], fan_in: int) -> Any:
    from onnx import numpy_helper

    scale = np.sqrt(2.0 / fan_in)  # keeps activations in range through many ReLU layers
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _conv_classifier(
    name: str,
    input_name: str,
    input_shape: list[int],
    nhwc: bool,
    output_name: str,
    classes: int,
    *,
    softmax: bool = False,
) -> bytes:
    """Two strided convolutions, global pooling and a dense layer: a real (if tiny) CNN."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(len(name))
    shape = helper.make_tensor("shape", TensorProto.INT64, [1], [classes])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [0])
    nodes = [helper.make_node("Unsqueeze", [input_name, "axes"], ["batched"])]
    if nhwc:
        nodes.append(helper.make_node("Transpose", ["batched"], ["nchw"], perm=[0, 3, 1, 2]))
    source = "nchw" if nhwc else "batched"
    nodes += [
        helper.make_node("Conv", [source, "c1"], ["h1"], strides=[4, 4], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("Conv", ["r1", "c2"], ["h2"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc", "bias"], ["logits"]),
        helper.make_node("Reshape", ["logits", "shape"], ["scores" if softmax else output_name]),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["scores"], [output_name], axis=0))
    initializers = [
        _weight(rng, "c1", (16, 3, 3, 3), 27),
        _weight(rng, "c2", (32, 16, 3, 3), 144),
        _weight(rng, "fc", (32, classes), 32),
        _weight(rng, "bias", (classes,), 1),
        shape,
        axes,
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [classes])],
        initializers,
    )
    return _model(graph)


def densenet() -> bytes:
    return _conv_classifier("densenet_onnx", "data_0", [3, 224, 224], False, "fc6_1", 1000)


def inception() -> bytes:
    return _conv_classifier(
        "inception_onnx",
        "input",
        [299, 299, 3],
        True,
        "InceptionV3/Predictions/Softmax",
        1001,
        softmax=True,
    )


def mlp() -> bytes:
    from onnx import TensorProto, helper

    rng = np.random.default_rng(7)
    nodes, initializers = [], []
    source, width = "features", MLP_INPUT
    for layer in range(MLP_LAYERS):
        initializers.append(_weight(rng, f"w{layer}", (width, MLP_WIDTH), width))
        nodes.append(helper.make_node("MatMul", [source, f"w{layer}"], [f"h{layer}"]))
        nodes.append(helper.make_node("Relu", [f"h{layer}"], [f"r{layer}"]))
        source, width = f"r{layer}", MLP_WIDTH
    initializers.append(_weight(rng, "out", (width, MLP_OUTPUT), width))
    nodes.append(helper.make_node("MatMul", [source, "out"], ["scores"]))
    graph = helper.make_graph(
        nodes,
        "mlp_onnx",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", MLP_INPUT])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", MLP_OUTPUT])],
        initializers,
    )
    return _model(graph)


def classifier() -> bytes:
    from onnx import TensorProto, helper

    rng = np.random.default_rng(16)
    nodes = [
        helper.make_node("Gemm", ["features", "w1", "b1"], ["hidden"]),
        helper.make_node("Relu", ["hidden"], ["activated"]),
        helper.make_node("Gemm", ["activated", "w2", "b2"], ["scores"]),
    ]
    initializers = [
        _weight(rng, "w1", (16, 32), 16),
        _weight(rng, "b1", (32,), 16),
        _weight(rng, "w2", (32, 4), 32),
        _weight(rng, "b2", (4,), 32),
    ]
    graph = helper.make_graph(
        nodes,
        "classifier_onnx",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 4])],
        initializers,
    )
    return _model(graph)


MLP_RECIPE = f"mlp {MLP_INPUT}->{MLP_LAYERS}x{MLP_WIDTH}->{MLP_OUTPUT} seed 7"
CONV_RECIPE = "conv 16,32 s4,s2 seed len(name)"
CLASSIFIER_RECIPE = "classifier 16->32->4 seed 16"

#: (file, builder, recipe): a file whose recorded recipe differs is rebuilt.
TARGETS: list[tuple[pathlib.Path, Callable[[], bytes], str]] = [
    (MAIN / "classifier_onnx" / "1" / "model.onnx", classifier, CLASSIFIER_RECIPE),
    (MAIN / "densenet_onnx" / "1" / "model.onnx", densenet, CONV_RECIPE),
    (MAIN / "mlp_onnx" / "1" / "model.onnx", mlp, MLP_RECIPE),
    (EXPLICIT / "densenet_onnx" / "1" / "model.onnx", densenet, CONV_RECIPE),
    (EXPLICIT / "inception_onnx" / "1" / "model.onnx", inception, CONV_RECIPE + " softmax"),
]


def build_all(*, quiet: bool = False) -> list[pathlib.Path]:
    """Write every missing or outdated model file; the paths written."""
    written = []
    for path, build, recipe in TARGETS:
        stamp = path.with_suffix(".onnx.recipe")
        if path.is_file() and stamp.is_file() and stamp.read_text() == recipe:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".onnx.tmp")
        temporary.write_bytes(build())
        temporary.replace(path)  # never a half-written model.onnx for a server to load
        stamp.write_text(recipe)
        written.append(path)
        if not quiet:
            print(f"built {path.relative_to(HERE.parent)}")
    return written


if __name__ == "__main__":
    try:
        import onnx  # noqa: F401
    except ImportError:
        sys.exit("build_models.py needs the onnx package: pip install 'asyncinfer[onnx]'")
    build_all()
