"""Batch inputs computed over a formed batch, and batch outputs scattered back (Triton's
model_config.proto examples), from plain requests."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from asyncinfer.errors import InvalidArgument
from asyncinfer.inference.python_model import Request
from asyncinfer.inference.scheduling.ragged import RaggedBatching
from asyncinfer.pb.inference.model_config_pb2 import ModelConfig

KINDS = (
    "BATCH_ELEMENT_COUNT",
    "BATCH_ACCUMULATED_ELEMENT_COUNT",
    "BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO",
    "BATCH_MAX_ELEMENT_COUNT_AS_SHAPE",
    "BATCH_ITEM_SHAPE",
    "BATCH_ITEM_SHAPE_FLATTEN",
)


def _plan(max_batch_size: int = 8) -> RaggedBatching:
    batch_inputs = ", ".join(
        f'{{ kind: {kind} target_name: "{kind}" data_type: TYPE_INT32 source_input: "X" }}'
        for kind in KINDS
    )
    config = text_format.Parse(
        f"""name: "m" max_batch_size: {max_batch_size}
        input [ {{ name: "X" data_type: TYPE_FP32 dims: [ -1, -1 ] allow_ragged_batch: true }} ]
        output [ {{ name: "Y" data_type: TYPE_FP32 dims: [ -1, -1 ] }} ]
        batch_input [ {batch_inputs} ]
        batch_output [ {{ target_name: "Y" source_input: "X" }} ]""",
        ModelConfig(),
    )
    return RaggedBatching.from_config(config)


def test_the_protos_examples() -> None:
    # A batch-2 request of shape [2, 3, 1] and a batch-1 request of shape [1, 2, 2].
    requests = [Request({"X": np.zeros((2, 3, 1))}), Request({"X": np.zeros((1, 2, 2))})]
    _plan().add_batch_inputs(requests)
    got = [{k: r.input(k).as_numpy().tolist() for k in KINDS} for r in requests]  # type: ignore[union-attr]
    assert [g["BATCH_ELEMENT_COUNT"] for g in got] == [[6], [4]]
    assert [g["BATCH_ACCUMULATED_ELEMENT_COUNT"] for g in got] == [[6], [10]]
    assert [g["BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO"] for g in got] == [[0, 6], [10]]
    assert [len(g["BATCH_MAX_ELEMENT_COUNT_AS_SHAPE"]) for g in got] == [6, 0]
    assert [g["BATCH_ITEM_SHAPE"] for g in got] == [[[3, 1], [3, 1]], [[2, 2]]]
    assert [g["BATCH_ITEM_SHAPE_FLATTEN"] for g in got] == [[3, 1, 3, 1], [2, 2]]


def test_scatter_cuts_the_flat_output_by_source_shapes() -> None:
    flat = np.arange(10, dtype=np.float32)
    parts = _plan().scatter("m", {"Y": flat}, [{"X": (2, 3, 1)}, {"X": (1, 2, 2)}])
    assert parts[0]["Y"].shape == (2, 3, 1) and parts[1]["Y"].shape == (1, 2, 2)
    assert parts[1]["Y"].reshape(-1).tolist() == [6, 7, 8, 9]


def test_ragged_batching_needs_a_batching_model() -> None:
    with pytest.raises(InvalidArgument, match="need a batching model"):
        _plan(max_batch_size=0)
