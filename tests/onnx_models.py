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


def sequence_model(
    *, batched: bool, controls: str, corrid: str, variable: bool
) -> bytes:
    """An ONNX model for sequence batching: INPUT, START, END, READY and CORRID in, OUTPUT =
    (INPUT + START + END * CORRID) * READY out (no state: Triton's simple_dyna_sequence
    arithmetic). ``controls`` is "int32" or "bool"; ``corrid`` "uint64" or "string" (then the
    CORRID term is 0, and CORRID_OUT echoes the string the graph got). ``batched``: a leading
    batch dimension; ``variable``: INPUT has any number of elements."""
    from onnx import TensorProto, helper

    batch = ["batch"] if batched else []
    control_type = TensorProto.INT32 if controls == "int32" else TensorProto.BOOL
    corrid_type = TensorProto.UINT64 if corrid == "uint64" else TensorProto.STRING
    int32 = TensorProto.INT32
    nodes = [
        helper.make_node("Cast", [name], [f"{name}_i"], to=int32) for name in ("START", "END")
    ]
    nodes.append(helper.make_node("Cast", ["READY"], ["READY_i"], to=int32))
    nodes.append(helper.make_node("Add", ["INPUT", "START_i"], ["with_start"]))
    outputs = [helper.make_tensor_value_info("OUTPUT", int32, [*batch, "n" if variable else 1])]
    if corrid == "uint64":
        nodes += [
            helper.make_node("Cast", ["CORRID"], ["CORRID_i"], to=int32),
            helper.make_node("Mul", ["END_i", "CORRID_i"], ["end_term"]),
            helper.make_node("Add", ["with_start", "end_term"], ["total"]),
        ]
    else:
        nodes += [
            helper.make_node("Identity", ["with_start"], ["total"]),
            helper.make_node("Identity", ["CORRID"], ["CORRID_OUT"]),
        ]
        outputs.append(helper.make_tensor_value_info("CORRID_OUT", corrid_type, [*batch, 1]))
    nodes.append(helper.make_node("Mul", ["total", "READY_i"], ["OUTPUT"]))
    inputs = [helper.make_tensor_value_info("INPUT", int32, [*batch, "n" if variable else 1])]
    inputs += [
        helper.make_tensor_value_info(name, control_type, [*batch, 1])
        for name in ("START", "END", "READY")
    ]
    inputs.append(helper.make_tensor_value_info("CORRID", corrid_type, [*batch, 1]))
    graph = helper.make_graph(nodes, "sequence", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()
