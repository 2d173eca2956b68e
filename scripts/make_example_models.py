"""Write the example repositories' generated model files (ONNX graphs with fixed random weights).

    python scripts/make_example_models.py          # (re)write them
    python scripts/make_example_models.py --check  # exit 1 if a committed file differs

Nothing is downloaded: the graphs are built with the onnx package from a fixed seed, so the
output is the same on every machine and the committed files can be checked against it.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLASSIFIER = ROOT / "examples" / "model_repository" / "classifier_onnx" / "1" / "model.onnx"


def classifier(seed: int = 7) -> bytes:
    """features[batch,16] -> relu(features @ w1 + b1) @ w2 + b2 -> scores[batch,4]."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {
        "w1": rng.standard_normal((16, 32)).astype(np.float32) * np.float32(0.25),
        "b1": rng.standard_normal(32).astype(np.float32) * np.float32(0.1),
        "w2": rng.standard_normal((32, 4)).astype(np.float32) * np.float32(0.25),
        "b2": rng.standard_normal(4).astype(np.float32) * np.float32(0.1),
    }
    nodes = [
        helper.make_node("Gemm", ["features", "w1", "b1"], ["hidden"]),
        helper.make_node("Relu", ["hidden"], ["activated"]),
        helper.make_node("Gemm", ["activated", "w2", "b2"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "classifier",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(array, name) for name, array in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    content = classifier()
    if args.check:
        same = CLASSIFIER.is_file() and CLASSIFIER.read_bytes() == content
        print(f"{CLASSIFIER.relative_to(ROOT)}: {'up to date' if same else 'DIFFERS'}")
        return 0 if same else 1
    CLASSIFIER.parent.mkdir(parents=True, exist_ok=True)
    CLASSIFIER.write_bytes(content)
    print(f"wrote {CLASSIFIER.relative_to(ROOT)} ({len(content)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
