"""The model of example 02: a small MLP classifier generated with the onnx package.

16 features -> 64 hidden (ReLU) -> 4 classes (softmax), random weights from a fixed seed, written
once into a cache folder; nothing is downloaded.
"""

from __future__ import annotations

import pathlib

import numpy as np

FEATURES, HIDDEN, CLASSES = 16, 64, 4


def ensure_model(cache_dir: pathlib.Path, seed: int = 0) -> pathlib.Path:
    """The path of the classifier's ONNX file in ``cache_dir``, generated on first use."""
    path = cache_dir / f"classifier-{seed}.onnx"
    if path.exists():
        return path
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {
        "w1": rng.standard_normal((FEATURES, HIDDEN)).astype(np.float32) / 4,
        "b1": rng.standard_normal(HIDDEN).astype(np.float32) / 4,
        "w2": rng.standard_normal((HIDDEN, CLASSES)).astype(np.float32) / 4,
    }
    nodes = [
        helper.make_node("MatMul", ["features", "w1"], ["xw"]),
        helper.make_node("Add", ["xw", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "classifier",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", CLASSES])],
        [numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_bytes(model.SerializeToString())
    partial.replace(path)  # atomic: a concurrent reader never sees half a model
    return path
