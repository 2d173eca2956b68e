"""Small ONNX models for tests, built with the onnx package (random weights, nothing downloaded)."""

from __future__ import annotations

from typing import Any

import numpy as np


def mlp_model(seed: int = 0) -> tuple[bytes, Any]:
    """An ONNX MLP features[batch,16] -> scores[batch,4] and its numpy reference."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((16, 32)).astype(np.float32)
    w2 = rng.standard_normal((32, 4)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["features", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8

    def reference(features: np.ndarray) -> np.ndarray:
        return np.maximum(features @ w1, 0) @ w2

    return model.SerializeToString(), reference


def add_model() -> bytes:
    """An ONNX model a[batch,4] + b[batch,4] -> c: two inputs sharing a symbolic dimension."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])],
        "add",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 4]) for n in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def string_model() -> bytes:
    """An ONNX model over strings: TEXT[n] -> SAME[n] (identity) and CODE[n] (int64: "123" -> 1,
    "é" -> 2, anything else -1), so a test sees what the graph itself read."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Identity", ["TEXT"], ["SAME"]),
        helper.make_node(
            "LabelEncoder",
            ["TEXT"],
            ["CODE"],
            domain="ai.onnx.ml",
            keys_strings=["123", "é"],
            values_int64s=[1, 2],
            default_int64=-1,
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "strings",
        [helper.make_tensor_value_info("TEXT", TensorProto.STRING, ["n"])],
        [
            helper.make_tensor_value_info("SAME", TensorProto.STRING, ["n"]),
            helper.make_tensor_value_info("CODE", TensorProto.INT64, ["n"]),
        ],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model.SerializeToString()
