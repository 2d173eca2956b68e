"""The HTTP codec: request bodies (JSON and binary) to InferRequests, InferResponses back, and
nested JSON data flattened exactly when it nests as the shape."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from asyncinfer.datatypes import serialize_bytes
from asyncinfer.errors import InvalidArgument
from asyncinfer.inference.http.codec import (
    HeaderPlans,
    decode_request,
    encode_response,
    json_elements,
    parse_json,
)
from asyncinfer.inference.infer_types import ElementValues, InferResponse, OutputTensor
from asyncinfer.inference.plans import declaration_key


def _body(header: dict[str, Any], *tail: bytes) -> tuple[bytes, str]:
    text = json.dumps(header).encode()
    return text + b"".join(tail), str(len(text))


def test_binary_and_json_inputs_and_options() -> None:
    raw = np.arange(4, dtype=np.int32).tobytes()
    body, length = _body(
        {
            "id": "r1",
            "parameters": {"binary_data_output": True, "sequence_id": 7},
            "inputs": [
                {"name": "A", "datatype": "INT32", "shape": [1, 4],
                 "parameters": {"binary_data_size": 16}},
                {"name": "B", "datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, 4]]},
            ],
            "outputs": [{"name": "X", "parameters": {"binary_data": False, "classification": 2}}],
        },
        raw,
    )  # fmt: skip
    decoded = decode_request(body, length, "m", None)
    request = decoded.request
    assert request.id == "r1" and dict(request.parameters) == {"sequence_id": 7}
    a, b = request.inputs
    assert bytes(a.data) == raw  # type: ignore[arg-type]
    assert isinstance(b.data, ElementValues) and list(b.data.values) == [1, 2, 3, 4]
    assert request.outputs[0].class_count == 2
    assert decoded.binary_default is True and decoded.binary_outputs == {"X": False}


def test_encode_binary_and_json_outputs() -> None:
    response = InferResponse(
        "m", "1", "r1",
        [OutputTensor("X", "INT32", np.arange(4, dtype=np.int32).reshape(2, 2)),
         OutputTensor("S", "BYTES", np.array([b"hi", b"\xff"], dtype=np.object_))],
    )  # fmt: skip
    parts, length = encode_response(response, False, {"X": True})
    body = b"".join(parts)
    assert length is not None
    header = json.loads(body[:length])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 16}
    assert np.frombuffer(body[length:], np.int32).tolist() == [0, 1, 2, 3]
    assert header["outputs"][1]["data"] == ["hi", "\udcff"]
    assert encode_response(response, False, {})[1] is None


@given(hnp.arrays(np.int32, hnp.array_shapes(min_dims=2, max_dims=4, max_side=3)))
def test_nested_data_flattens_row_major(array: np.ndarray[Any, Any]) -> None:
    body, _ = _body(
        {"inputs": [{"name": "A", "datatype": "INT32", "shape": list(array.shape),
                     "data": array.tolist()}]}
    )  # fmt: skip
    (tensor,) = decode_request(body, None, "m", None).request.inputs
    assert isinstance(tensor.data, ElementValues)
    assert list(tensor.data.values) == array.reshape(-1).tolist()


@given(st.integers(1, 4), st.integers(1, 4))
def test_nesting_other_than_the_shape_is_refused(rows: int, columns: int) -> None:
    data = np.zeros((rows, columns), np.int32).tolist()
    body, _ = _body(
        {"inputs": [{"name": "A", "datatype": "INT32", "shape": [columns + 1, rows],
                     "data": data}]}
    )  # fmt: skip
    with pytest.raises(InvalidArgument, match="does not nest as its shape"):
        decode_request(body, None, "m", None)


def _reference_header(
    response: InferResponse, binary_default: bool, binary_outputs: dict[str, bool]
) -> bytes:
    """The response header as ``json.dumps`` writes the message: what encode_response's
    piecewise writing must match byte for byte."""
    outputs = []
    for output in response.outputs:
        entry: dict[str, Any] = {
            "name": output.name,
            "datatype": output.datatype,
            "shape": list(output.shape),
        }
        if binary_outputs.get(output.name, binary_default):
            size = (
                len(serialize_bytes(output.data))
                if output.datatype == "BYTES"
                else (output.data.nbytes)
            )
            entry["parameters"] = {"binary_data_size": size}
        else:
            entry["data"] = json_elements(output.data, output.datatype)
        outputs.append(entry)
    message: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
    }
    if response.id:
        message["id"] = response.id
    if response.parameters:
        message["parameters"] = response.parameters
    message["outputs"] = outputs
    return json.dumps(message, separators=(",", ":")).encode()


_TEXT = st.text(st.characters(codec="utf-8") | st.sampled_from('\x00\x1f\x7f"\\/\u2028é'))
_DTYPES = st.sampled_from(
    ["int8", "uint8", "int16", "int32", "int64", "uint64", "bool", "float16", "float32",
     "float64"]
)  # fmt: skip


@st.composite
def _outputs(draw: st.DrawFn) -> OutputTensor:
    if draw(st.booleans()):
        texts = draw(st.lists(st.binary(max_size=4) | _TEXT.map(str.encode), max_size=4))
        array = np.array(texts, dtype=np.object_).reshape(-1)
        return OutputTensor(draw(_TEXT), "BYTES", array)
    dtype = np.dtype(draw(_DTYPES))
    values = hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
    return OutputTensor(draw(_TEXT), dtype.name.upper(), draw(values))


@given(
    st.lists(_outputs(), max_size=4),
    _TEXT,
    _TEXT,
    st.dictionaries(_TEXT, st.integers() | st.booleans() | _TEXT | st.floats(), max_size=3),
    st.booleans(),
    st.data(),
)
def test_encoded_header_is_what_json_dumps_writes(
    outputs: list[OutputTensor],
    version: str,
    request_id: str,
    parameters: dict[str, Any],
    binary_default: bool,
    data: st.DataObject,
) -> None:
    names = [output.name for output in outputs]
    binary = data.draw(st.dictionaries(st.sampled_from(names), st.booleans()) if names else
                       st.just({}))  # fmt: skip
    response = InferResponse("m\u00e9\n", version, request_id, outputs, parameters)
    parts, length = encode_response(response, binary_default, binary)
    expected = _reference_header(response, binary_default, binary)
    assert parts[0] == expected
    assert length == (len(expected) if len(parts) > 1 else None)


@pytest.mark.parametrize(
    "array",
    [
        np.array([1.5, np.nan, -np.inf, np.inf, -0.0, 1e16, 1e-7], np.float32),
        np.array([[0.1, 2.0**70]], np.float64),
        np.array([np.nan], np.float16),
        np.array([2**64 - 1, 0], np.uint64),
        np.array([-(2**63), 2**63 - 1], np.int64),
        np.array([True, False]),
        np.zeros((0, 3), np.int32),
    ],
)
def test_special_elements_are_written_as_json_dumps_writes_them(
    array: np.ndarray[Any, Any],
) -> None:
    datatype = "BOOL" if array.dtype == np.bool_ else array.dtype.name.upper()
    response = InferResponse("m", "1", "", [OutputTensor("X", datatype, array)])
    assert encode_response(response, False, {})[0][0] == _reference_header(response, False, {})


def _summary(decoded: Any) -> tuple[Any, ...]:
    request = decoded.request
    inputs = [(t.name, t.datatype, t.shape, bytes(t.data)) for t in request.inputs]
    outputs = [(o.name, o.class_count, o.shm) for o in request.outputs]
    return (inputs, outputs, dict(request.parameters), request.id, request.shm,
            decoded.binary_default, decoded.binary_outputs)  # fmt: skip


@given(st.lists(st.binary(min_size=1, max_size=8), min_size=1, max_size=3), st.data())
def test_a_header_seen_again_decodes_as_it_did(payloads: list[bytes], data: st.DataObject) -> None:
    header = {
        "id": "r", "parameters": {"binary_data_output": True, "priority": 2},
        "inputs": [{"name": f"I{i}", "datatype": "UINT8", "shape": [len(p)],
                    "parameters": {"binary_data_size": len(p)}} for i, p in enumerate(payloads)],
        "outputs": [{"name": "O", "parameters": {"binary_data": False, "classification": 1}}],
    }  # fmt: skip
    plans = HeaderPlans()
    body, length = _body(header, *payloads)
    first = decode_request(body, length, "m", None, plans)
    assert plans.get(("m", body[: int(length)], False)) is None  # planned at its second sighting
    first = decode_request(body, length, "m", None, plans)
    assert plans.get(("m", body[: int(length)], False)) is not None
    assert _summary(first) == _summary(decode_request(body, length, "m", None))
    others = [data.draw(st.binary(min_size=len(p), max_size=len(p))) for p in payloads]
    again, _ = _body(header, *others)
    second = decode_request(again, length, "m", None, plans)
    assert _summary(second) == _summary(decode_request(again, length, "m", None))
    assert second.request is not first.request and second.request.inputs[0].data == others[0]
    # The classification output has options: no declaration key to hand on.
    assert second.request.declaration is None
    # A body whose binary data is not what the header says fails as it would unplanned.
    short = again[:-1]
    with pytest.raises(InvalidArgument) as planned:
        decode_request(short, length, "m", None, plans)
    with pytest.raises(InvalidArgument) as unplanned:
        decode_request(short, length, "m", None)
    assert planned.value.message == unplanned.value.message


def test_a_planned_header_hands_its_declaration_key_on() -> None:
    header = {
        "inputs": [{"name": "I", "datatype": "UINT8", "shape": [2],
                    "parameters": {"binary_data_size": 2}}],
        "outputs": [{"name": "O"}],
    }  # fmt: skip
    plans = HeaderPlans()
    body, length = _body(header, b"ab")
    for _ in range(2):  # planned at its second sighting
        assert decode_request(body, length, "m", None, plans).request.declaration is None
    planned = decode_request(body, length, "m", None, plans).request
    assert planned.declaration == declaration_key(planned.inputs, planned.outputs)
    assert planned.declaration == ((("I", "UINT8", (2,)),), ("O",))


def test_headers_with_json_data_or_shared_memory_get_no_plan() -> None:
    plans = HeaderPlans()
    for tensor in (
        {"data": [1]},
        {"parameters": {"shared_memory_region": "r", "shared_memory_byte_size": 1}},
    ):
        header = {"inputs": [{"name": "A", "datatype": "UINT8", "shape": [1], **tensor},
                             {"name": "B", "datatype": "UINT8", "shape": [1],
                              "parameters": {"binary_data_size": 1}}]}  # fmt: skip
        body, length = _body(header, b"\x01")
        for _ in range(3):
            decode_request(body, length, "m", None, plans)
        assert plans.get(("m", body[: int(length)], False)) is None
    binary = {"name": "A", "datatype": "UINT8", "shape": [1], "parameters": {"binary_data_size": 1}}
    body, length = _body({"inputs": [binary]}, b"\x01")
    decode_request(body, length, "m", None, plans)
    decode_request(body, length, "m", None, plans)
    assert plans.get(("m", body[: int(length)], False)) is not None
    assert plans.get(("other", body[: int(length)], False)) is None


def _json_summary(decoded: Any) -> tuple[Any, ...]:
    request = decoded.request
    inputs = [(t.name, t.datatype, t.shape, type(t.data), getattr(t.data, "values", t.data),
               getattr(t.data, "source", None)) for t in request.inputs]  # fmt: skip
    outputs = [(o.name, o.class_count, o.shm) for o in request.outputs]
    return (inputs, outputs, dict(request.parameters), request.id, request.shm,
            decoded.binary_default, decoded.binary_outputs)  # fmt: skip


def _json_request(
    values: list[list[Any]], request_id: Any = "absent", shapes: list[int] | None = None
) -> bytes:
    message: dict[str, Any] = {
        "parameters": {"priority": 1, "binary_data_output": False, "data": "kept"},
        "inputs": [{"name": f"I{i}", "datatype": "INT32", "data": v,
                    "shape": [len(v) if shapes is None else shapes[i]]}
                   for i, v in enumerate(values)],
        "outputs": [{"name": "O", "parameters": {"binary_data": True}}, {"name": "P"}],
    }  # fmt: skip
    if request_id != "absent":
        message["id"] = request_id
    return json.dumps(message).encode()


_ELEMENT = (
    st.integers(-(2**31), 2**31 - 1)
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
)
_ELEMENTS = st.lists(_ELEMENT, max_size=6)


@given(st.lists(_ELEMENTS, min_size=1, max_size=3), st.data())
def test_a_json_request_seen_again_decodes_as_it_did(
    first: list[list[Any]], data: st.DataObject
) -> None:
    plans = HeaderPlans()
    first_ids: list[str | None] = ["a", "b"]  # planned at its second sighting; ids vary
    for request_id in first_ids:
        body = _json_request(first, request_id)
        assert decode_request(body, None, "m", None, plans).request.declaration is None
    # The same declaration (shapes), other data: of the same count, or not (the data plane
    # checks the count).
    again = [
        data.draw(st.lists(_ELEMENT, min_size=len(v), max_size=len(v)) | _ELEMENTS) for v in first
    ]
    shapes = [len(v) for v in first]
    again_ids: list[str | None] = ["c", None]  # an id of null is no id, as decoded in full
    for request_id in again_ids:
        body = _json_request(again, request_id, shapes)
        planned = decode_request(body, None, "m", None, plans)
        assert planned.request.declaration is not None  # made by the plan
        assert _json_summary(planned) == _json_summary(decode_request(body, None, "m", None))
    # Another model's request is not planned by this one's.
    assert decode_request(body, None, "other", None, plans).request.declaration is None


@pytest.mark.parametrize(
    ("tensor", "why"),
    [
        ({"data": [[1, 2]], "shape": [1, 2]}, "nested data"),
        ({"data": 1, "shape": [1]}, "one element given bare"),
        ({"data": None}, "null data"),
        ({"parameters": {"shared_memory_region": "r", "shared_memory_byte_size": 4}},
         "shared memory"),
        ({"data": [1.5, float("nan")], "datatype": "FP32"}, "NaN, read by json"),
        ({"data": [2**70, 1], "datatype": "INT64"}, "an integer past 64 bits, read by json"),
    ],
)  # fmt: skip
def test_json_requests_the_plans_do_not_cover_are_decoded_in_full(
    tensor: dict[str, Any], why: str
) -> None:
    plans = HeaderPlans()
    header = {"inputs": [{"name": "A", "datatype": "INT32", "shape": [2], **tensor}]}
    body = json.dumps(header).encode()
    for _ in range(3):
        decoded = decode_request(body, None, "m", None, plans)
        assert decoded.request.declaration is None, why
    assert _json_summary(decoded) == _json_summary(decode_request(body, None, "m", None))


def test_a_json_request_that_fails_fails_as_it_would_unplanned() -> None:
    plans = HeaderPlans()
    good = {"inputs": [{"name": "A", "datatype": "INT32", "shape": [2], "data": [1, 2]}]}
    for _ in range(3):
        decode_request(json.dumps(good).encode(), None, "m", None, plans)
    bad_bodies = [
        {**good, "id": 5},  # an id that is not a string
        {"inputs": [{**good["inputs"][0], "data": [[1], [2, 3]]}]},  # nested unlike its shape
        {**good, "parameters": {"x": [[[[1]]]]} | {"deep": json.loads("[" * 300 + "]" * 300)}},
    ]
    for message in bad_bodies:
        body = json.dumps(message).encode()
        try:
            unplanned: Any = decode_request(body, None, "m", None)
        except InvalidArgument as exc:
            with pytest.raises(InvalidArgument) as planned:
                decode_request(body, None, "m", None, plans)
            assert planned.value.message == exc.message
        else:  # nested past what orjson writes: decoded in full, not planned
            decoded = decode_request(body, None, "m", None, plans)
            assert decoded.request.parameters == unplanned.request.parameters


def test_header_plans_are_bounded() -> None:
    plans = HeaderPlans(size=2)
    keys = []
    for size in range(1, 5):
        binary = {"name": "A", "datatype": "UINT8", "shape": [size],
                  "parameters": {"binary_data_size": size}}  # fmt: skip
        body, length = _body({"inputs": [binary]}, bytes(size))
        for _ in range(2):
            decode_request(body, length, "m", None, plans)
        keys.append(("m", body[: int(length)], False))
    assert [plans.get(key) is not None for key in keys] == [False, False, True, True]


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=20,
)


def _parsed_as_json_does(text: bytes) -> None:
    try:
        expected: Any = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        expected = exc
    try:
        got: Any = parse_json(text, "t")
    except InvalidArgument as exc:
        got = exc
    if isinstance(expected, Exception):
        assert isinstance(got, InvalidArgument)
        return
    # repr tells 1 from 1.0 and True, and -0.0 from 0.0; NaN compares by its repr too.
    assert repr(got) == repr(expected)


@given(_JSON_VALUES, st.booleans())
def test_parse_json_reads_what_json_reads(value: Any, ascii: bool) -> None:
    _parsed_as_json_does(json.dumps(value, ensure_ascii=ascii).encode())


@pytest.mark.parametrize(
    "text",
    [b'"\\ud800"', b'"\\udc80x"', b"NaN", b"[Infinity, -Infinity]", b"1e400", b"-0",
     b"123456789012345678901234567890", b"-9223372036854775809", b"18446744073709551616",
     b"18446744073709551615", b"\xef\xbb\xbf{}", b'{"a":1,"a":2}', b"5e-324", b"1E2",
     '"\u00e9"'.encode("utf-16"), '{"a":1}'.encode("utf-32-le"), b'"\xed\xa0\x80"', b"[1,]",
     b"{", b"", b" [] ", b"\x00", b"0.1e1", b"[" * 2000 + b"]" * 2000],
)  # fmt: skip
def test_parse_json_agrees_with_json_where_orjson_differs(text: bytes) -> None:
    try:
        _parsed_as_json_does(text)
    except RecursionError:
        with pytest.raises(InvalidArgument, match="nested too deeply"):
            parse_json(text, "t")
