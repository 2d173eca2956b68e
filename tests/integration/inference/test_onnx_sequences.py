"""Sequence batching on ONNX models, through tritonclient: START, END, READY (int32 or bool) and
CORRID (uint64 or string) reach the graph as input tensors of their declared types, for the
direct and oldest strategies, 1 or 4 instances, max_batch_size 0 or 4, fixed and variable
shapes; Triton's three texts; and new sequences past the free slots waiting in a bounded
backlog, UNAVAILABLE only past its bound. The ONNX files are built here with onnx.helper."""

from __future__ import annotations

import dataclasses
import pathlib
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from asyncinfer.inference.app import build_server

from ...onnx_models import sequence_model
from .inference_servers import ThreadedServer

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    strategy: str
    controls: str  # "int32" or "bool"
    corrid: str  # "uint64" or "string"
    max_batch_size: int
    instances: int
    variable: bool


VARIANTS = [
    Variant("seq_direct_int32_u64", "direct", "int32", "uint64", 0, 1, False),
    Variant("seq_oldest_bool_u64", "oldest", "bool", "uint64", 4, 4, False),
    Variant("seq_direct_int32_str_var", "direct", "int32", "string", 4, 1, True),
    Variant("seq_oldest_bool_str_var", "oldest", "bool", "string", 0, 4, True),
]
STRATEGIES = {
    "direct": "direct { max_queue_delay_microseconds: 50000 }",
    "oldest": "oldest { max_candidate_sequences: 4 max_queue_delay_microseconds: 50000 }",
}


def _flag(kind: str, controls: str) -> str:
    values = (
        "int32_false_true: [ 0, 1 ]" if controls == "int32" else "bool_false_true: [ false, true ]"
    )
    return f"{{ kind: CONTROL_SEQUENCE_{kind} {values} }}"


def _config(variant: Variant, backlog: int | None = None) -> str:
    corrid = "TYPE_UINT64" if variant.corrid == "uint64" else "TYPE_STRING"
    dims = "-1" if variant.variable else "1"
    outputs = f'{{ name: "OUTPUT" data_type: TYPE_INT32 dims: [ {dims} ] }}'
    if variant.corrid == "string":
        outputs += ', { name: "CORRID_OUT" data_type: TYPE_STRING dims: [ 1 ] }'
    parameters = (
        f'parameters {{ key: "max_sequence_backlog" value {{ string_value: "{backlog}" }} }}'
        if backlog is not None
        else ""
    )
    controls = ", ".join(
        f'{{ name: "{kind}" control [ {_flag(kind, variant.controls)} ] }}'
        for kind in ("START", "END", "READY")
    )
    return f"""
name: "{variant.name}"
platform: "onnxruntime_onnx"
max_batch_size: {variant.max_batch_size}
sequence_batching {{
  {STRATEGIES[variant.strategy]}
  max_sequence_idle_microseconds: 20000000
  control_input [
    {controls},
    {{ name: "CORRID" control [ {{ kind: CONTROL_SEQUENCE_CORRID data_type: {corrid} }} ] }}
  ]
}}
input [ {{ name: "INPUT" data_type: TYPE_INT32 dims: [ {dims} ] }} ]
output [ {outputs} ]
instance_group [ {{ count: {variant.instances} kind: KIND_CPU }} ]
{parameters}
"""


BACKLOG = Variant("seq_backlog", "direct", "int32", "uint64", 0, 1, False)


def _write(root: pathlib.Path, variant: Variant, backlog: int | None = None) -> None:
    folder = root / variant.name
    (folder / "1").mkdir(parents=True)
    onnx = sequence_model(
        batched=variant.max_batch_size > 0,
        controls=variant.controls,
        corrid=variant.corrid,
        variable=variant.variable,
    )
    (folder / "1" / "model.onnx").write_bytes(onnx)
    (folder / "config.pbtxt").write_text(_config(variant, backlog))


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("onnx-sequences")
    for variant in VARIANTS:
        _write(root, variant)
    _write(root, BACKLOG, backlog=1)
    with ThreadedServer(lambda: build_server(root, grpc_port=0)) as address:
        yield address


def _request(variant: Variant, values: list[int]) -> list[grpcclient.InferInput]:
    array = np.array(values, np.int32)
    if variant.max_batch_size > 0:
        array = array.reshape(1, -1)
    tensor = grpcclient.InferInput("INPUT", list(array.shape), "INT32")
    tensor.set_data_from_numpy(array)
    return [tensor]


def _sequence(url: str, variant: Variant, sequence_id: int | str, steps: list[list[int]]) -> Any:
    """Run one sequence with unary calls; each step's OUTPUT (flat) and CORRID_OUT."""
    answers = []
    with grpcclient.InferenceServerClient(url) as client:
        for index, values in enumerate(steps):
            result = client.infer(
                variant.name,
                _request(variant, values),
                sequence_id=sequence_id,
                sequence_start=index == 0,
                sequence_end=index == len(steps) - 1,
            )
            corrid = result.as_numpy("CORRID_OUT") if variant.corrid == "string" else None
            answers.append((result.as_numpy("OUTPUT").reshape(-1).tolist(), corrid))
    return answers


def _expected(variant: Variant, sequence_id: int | str, steps: list[list[int]]) -> list[Any]:
    expected = []
    for index, values in enumerate(steps):
        start, end = int(index == 0), int(index == len(steps) - 1)
        term = end * int(sequence_id) if variant.corrid == "uint64" else 0
        expected.append([value + start + term for value in values])
    return expected


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_control_inputs_reach_the_graph_as_tensors_of_their_types(
    url: str, variant: Variant
) -> None:
    # Four sequences at once (batched together where the model batches), each three steps;
    # variable-shape models get a different length per sequence.
    ids: list[int | str] = (
        [11, 12, 13, 14] if variant.corrid == "uint64" else ["alpha", "b", "seq-3", "δ"]
    )
    length = (lambda i: i + 1) if variant.variable else (lambda i: 1)
    plans = {key: [[10 * i + step] * length(i) for step in range(3)] for i, key in enumerate(ids)}
    answers: dict[int | str, Any] = {}

    def run(key: int | str) -> None:
        answers[key] = _sequence(url, variant, key, plans[key])

    threads = [threading.Thread(target=run, args=(key,)) for key in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for key in ids:
        assert [out for out, _ in answers[key]] == _expected(variant, key, plans[key]), key
        if variant.corrid == "string":
            assert all(c.reshape(-1).tolist() == [str(key).encode()] for _, c in answers[key])


def _refusal(call: Any) -> str:
    with pytest.raises(InferenceServerException) as info:
        call()
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    return str(info.value.message())


def test_tritons_three_sequence_texts(url: str) -> None:
    batched, plain = VARIANTS[1], VARIANTS[0]
    two = grpcclient.InferInput("INPUT", [2, 1], "INT32")
    two.set_data_from_numpy(np.zeros((2, 1), np.int32))
    with grpcclient.InferenceServerClient(url) as client:
        assert _refusal(
            lambda: client.infer(batched.name, [two], sequence_id=5, sequence_start=True)
        ) == (
            f"inference request to model '{batched.name}' must specify batch-size 1 due to "
            "requirements of sequence batcher"
        )
        assert _refusal(lambda: client.infer(plain.name, _request(plain, [1]))) == (
            f"inference request to model '{plain.name}' must specify a non-zero or non-empty "
            "correlation ID"
        )
        assert _refusal(lambda: client.infer(plain.name, _request(plain, [1]), sequence_id=77)) == (
            f"inference request for sequence 77 to model '{plain.name}' must specify the START "
            "flag on the first request of the sequence"
        )


def _step(url: str, sequence_id: int, value: int, *, start: bool = False, end: bool = False) -> int:
    with grpcclient.InferenceServerClient(url) as client:
        result = client.infer(
            BACKLOG.name,
            _request(BACKLOG, [value]),
            sequence_id=sequence_id,
            sequence_start=start,
            sequence_end=end,
        )
    return int(result.as_numpy("OUTPUT").reshape(-1)[0])


def test_a_new_sequence_waits_in_the_bounded_backlog_for_a_slot(url: str) -> None:
    # One instance, max_batch_size 0: one slot; max_sequence_backlog 1.
    assert _step(url, 1, 5, start=True) == 6  # sequence 1 holds the slot
    waited: list[Any] = []
    second = threading.Thread(target=lambda: waited.append(_step(url, 2, 7, start=True)))
    second.start()
    second.join(0.5)
    assert second.is_alive() and not waited  # sequence 2 waits in the backlog
    with pytest.raises(InferenceServerException) as info:
        _step(url, 3, 0, start=True)  # the backlog is full
    assert info.value.status() == "StatusCode.UNAVAILABLE"
    assert "max_sequence_backlog" in str(info.value.message())
    assert _step(url, 1, 1, end=True) == 1 + 1  # sequence 1 ends: its slot goes to 2
    second.join(30)
    assert waited == [8]
    assert _step(url, 2, 0, end=True) == 2
