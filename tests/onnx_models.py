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


def sequence_model(*, batched: bool, controls: str, corrid: str, variable: bool) -> bytes:
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
    nodes = [helper.make_node("Cast", [name], [f"{name}_i"], to=int32) for name in ("START", "END")]
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


def ragged_model() -> bytes:
    """An ONNX model for ragged batching. Inputs: INPUT (FP32, 1-D: every request's elements)
    and the batch inputs COUNT, ACC, ACC0, SHAPE_FLAT (INT32, 1-D), MAXSHAPE (FP32, 1-D) and
    SHAPE (INT32 [items, 1]). Outputs: OUTPUT = 2 * INPUT (flat, scattered back) and, one row
    per request, COUNT_OUT, ACC_OUT, START_OUT (ACC0 without its last), MAX_OUT (the extent of
    MAXSHAPE), SHAPE_OUT and FLAT_OUT: what the graph was given, for a test to see."""
    from onnx import TensorProto, helper

    int32, fp32, i64 = TensorProto.INT32, TensorProto.FLOAT, TensorProto.INT64
    const = helper.make_tensor
    nodes = [
        helper.make_node("Constant", [], ["two"], value=const("two", fp32, [], [2.0])),
        helper.make_node("Constant", [], ["axis1"], value=const("axis1", i64, [1], [1])),
        helper.make_node("Constant", [], ["zero"], value=const("zero", i64, [1], [0])),
        helper.make_node("Constant", [], ["minus1"], value=const("minus1", i64, [1], [-1])),
        helper.make_node("Constant", [], ["one"], value=const("one", i64, [1], [1])),
        helper.make_node("Mul", ["INPUT", "two"], ["OUTPUT"]),
        helper.make_node("Unsqueeze", ["COUNT", "axis1"], ["COUNT_OUT"]),
        helper.make_node("Unsqueeze", ["ACC", "axis1"], ["ACC_OUT"]),
        helper.make_node("Slice", ["ACC0", "zero", "minus1"], ["starts"]),
        helper.make_node("Unsqueeze", ["starts", "axis1"], ["START_OUT"]),
        helper.make_node("Shape", ["MAXSHAPE"], ["max64"]),
        helper.make_node("Cast", ["max64"], ["max32"], to=int32),
        helper.make_node("Shape", ["COUNT"], ["requests"]),
        helper.make_node("Concat", ["requests", "one"], ["rows"], axis=0),
        helper.make_node("Expand", ["max32", "rows"], ["MAX_OUT"]),
        helper.make_node("Identity", ["SHAPE"], ["SHAPE_OUT"]),
        helper.make_node("Unsqueeze", ["SHAPE_FLAT", "axis1"], ["FLAT_OUT"]),
    ]
    info = helper.make_tensor_value_info
    inputs = [info("INPUT", fp32, ["n"]), info("MAXSHAPE", fp32, ["m"])]
    inputs.append(info("SHAPE", int32, ["b", 1]))
    inputs += [info(name, int32, [f"{name}_n"]) for name in ("COUNT", "ACC", "ACC0", "SHAPE_FLAT")]
    outputs = [info("OUTPUT", fp32, ["n"])]
    outputs += [
        info(name, int32, ["b", 1])
        for name in ("COUNT_OUT", "ACC_OUT", "START_OUT", "MAX_OUT", "SHAPE_OUT", "FLAT_OUT")
    ]
    graph = helper.make_graph(nodes, "ragged", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()
