"""KServe v2 REST inference bodies as the data plane's types and back: the HTTP front end's codec.

A request body is a JSON header, optionally followed by binary tensor data (Triton's binary
data extension): the ``Inference-Header-Content-Length`` header gives the JSON's length, and
each input with a ``binary_data_size`` parameter takes that many bytes of what follows, in input
order. Other inputs carry their elements in ``data`` (flat and row-major, or nested exactly as
the shape; BYTES as strings) or name a shared-memory region. Only the envelope is read here;
the data plane checks and reads the rest, with the same texts as over gRPC.

A response's outputs go back in request order, each as JSON ``data`` or, when the request asked
(``binary_data_output`` for all, ``binary_data`` per output), as binary data after the JSON.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from ...datatypes import BYTES, serialize_bytes, tensor_bytes
from ...errors import InvalidArgument, echo
from ..infer_types import (
    ElementValues,
    InferInput,
    InferRequest,
    InferResponse,
    InputData,
    RequestedOutput,
)
from ..shared_memory import RequestShm, shm_span

__all__ = ["HEADER_LENGTH", "DecodedRequest", "decode_request", "encode_response", "parse_json"]

#: The binary data extension's header: the byte length of the JSON that starts the body.
HEADER_LENGTH = "Inference-Header-Content-Length"
_NO_JSON_DATATYPES = ("FP16", "BF16")


@dataclasses.dataclass(slots=True)
class DecodedRequest:
    """An InferRequest and how its outputs go back: binary or JSON, per output name."""

    request: InferRequest
    binary_default: bool
    binary_outputs: dict[str, bool]


def parse_json(text: bytes | memoryview, what: str) -> Any:
    """The JSON value of ``text``; InvalidArgument saying where it is malformed."""
    try:
        return json.loads(bytes(text))
    except json.JSONDecodeError as exc:
        raise InvalidArgument(
            f"failed to parse the {what} JSON buffer: {exc.msg} at offset {exc.pos}"
        ) from None
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            f"failed to parse the {what} JSON buffer: not UTF-8 at offset {exc.start}"
        ) from None


def decode_request(
    body: bytes,
    header_length: str | None,
    model: str,
    shm: RequestShm | None,
) -> DecodedRequest:
    """The request ``body`` carries for ``model`` (``header_length``: the header's value)."""
    split = _split(body, header_length)
    message = parse_json(memoryview(body)[:split], "request")
    where = _Where("request", "", model)
    if not isinstance(message, dict):
        raise InvalidArgument(f"{where} must be a JSON object, not {_kind(message)}")
    binary = memoryview(body)[split:]
    inputs = _inputs(_field(message, "inputs", list, where, required=True), binary, model)
    parameters = dict(_field(message, "parameters", dict, where) or {})
    binary_default = parameters.pop("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise InvalidArgument(f"{where}: parameter 'binary_data_output' must be a boolean")
    outputs, binary_outputs = _outputs(_field(message, "outputs", list, where) or [], model)
    request_id = _field(message, "id", str, where) or ""
    request = InferRequest(inputs, outputs, parameters, request_id, None, shm)
    return DecodedRequest(request, binary_default, binary_outputs)


def _split(body: bytes, header_length: str | None) -> int:
    if header_length is None:
        return len(body)
    try:
        length = int(header_length)
    except ValueError:
        raise InvalidArgument(
            f"{HEADER_LENGTH} must be a byte count, not '{echo(header_length)}'"
        ) from None
    if not 0 <= length <= len(body):
        raise InvalidArgument(
            f"{HEADER_LENGTH} {length} is past the end of the request body ({len(body)} bytes)"
        )
    return length


class _Where:
    """Which part of a request a check is about, written out only when an error says so (most
    requests pass every check, and echoing names costs)."""

    __slots__ = ("key", "kind", "model")

    def __init__(self, kind: str, key: str | int, model: str) -> None:
        self.kind, self.key, self.model = kind, key, model

    def __str__(self) -> str:
        model = f"model '{echo(self.model)}'"
        if self.kind == "request":
            return f"the request for {model}"
        if isinstance(self.key, int):
            return f"{self.kind} {self.key} of the request for {model}"
        return f"{self.kind} '{echo(self.key)}' for {model}"


def _kind(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else "null"
    )


def _field(
    message: Mapping[str, Any], key: str, kind: type, where: _Where, *, required: bool = False
) -> Any:
    value = message.get(key)
    if value is None:
        if required:
            raise InvalidArgument(f"{where} has no '{key}'")
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = {list: "an array", dict: "an object", str: "a string", int: "an integer"}
        raise InvalidArgument(f"{where}: '{key}' must be {expected[kind]}, not {_kind(value)}")
    return value


def _inputs(tensors: list[Any], binary: memoryview, model: str) -> list[InferInput]:
    inputs = []
    offset = 0
    for index, tensor in enumerate(tensors):
        where = _Where("input", index, model)
        if not isinstance(tensor, dict):
            raise InvalidArgument(f"{where} must be a JSON object, not {_kind(tensor)}")
        name = _field(tensor, "name", str, where, required=True)
        where = _Where("input", name, model)
        datatype = _field(tensor, "datatype", str, where, required=True)
        shape = _shape(_field(tensor, "shape", list, where, required=True), where)
        parameters = dict(_field(tensor, "parameters", dict, where) or {})
        size = parameters.pop("binary_data_size", None)
        data: InputData | None = shm_span(parameters, str(where)) if parameters else None
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise InvalidArgument(f"{where}: 'binary_data_size' must be a byte count >= 0")
            if "data" in tensor or data is not None:
                raise InvalidArgument(
                    f"{where} has binary data and also 'data' or shared memory: give one"
                )
            if offset + size > len(binary):
                raise InvalidArgument(
                    f"{where}: binary_data_size {size} at offset {offset} is past the end of "
                    f"the binary data ({len(binary)} bytes after the JSON header)"
                )
            data = binary[offset : offset + size]
            offset += size
        elif data is None:
            data = _json_data(tensor, datatype, shape, where)
        inputs.append(InferInput(name, datatype, shape, data))
    if offset != len(binary):
        raise InvalidArgument(
            f"the request for model '{echo(model)}' has {len(binary)} bytes of binary data after "
            f"the JSON header, but its inputs' binary_data_size parameters add up to {offset}"
        )
    return inputs


def _shape(value: list[Any], where: _Where) -> tuple[int, ...]:
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in value):
        raise InvalidArgument(f"{where}: 'shape' must be an array of integers, not {value!r:.80}")
    return tuple(value)


def _json_data(
    tensor: Mapping[str, Any], datatype: str, shape: tuple[int, ...], where: _Where
) -> ElementValues:
    if "data" not in tensor:
        raise InvalidArgument(
            f"{where} has no data: give it in 'data', as binary data ('binary_data_size') or "
            "in shared memory"
        )
    if datatype in _NO_JSON_DATATYPES:
        raise InvalidArgument(
            f"receiving {datatype} data via JSON is not supported. Please use the binary data "
            f"format for {where}"
        )
    data = tensor["data"]
    if not isinstance(data, list):
        data = [data]  # one element given bare
    elif data and isinstance(data[0], list):
        data = _flatten(data, shape, where)
    return ElementValues(data, "data")


def _flatten(data: list[Any], shape: tuple[int, ...], where: _Where) -> list[Any]:
    """Nested ``data`` flattened row-major, after checking that it nests exactly as ``shape``."""
    flat: list[Any] = []

    def walk(items: Any, depth: int) -> None:
        if depth == len(shape):
            if isinstance(items, list):
                raise InvalidArgument(
                    f"{where}: 'data' is nested deeper than its shape {list(shape)}"
                )
            flat.append(items)
            return
        if not isinstance(items, list) or len(items) != shape[depth]:
            found = len(items) if isinstance(items, list) else "a single element"
            raise InvalidArgument(
                f"{where}: 'data' does not nest as its shape {list(shape)}: dimension {depth} "
                f"has {found} where {shape[depth]} were expected (give 'data' flat, row-major, "
                "or nested exactly as the shape)"
            )
        for item in items:
            walk(item, depth + 1)

    walk(data, 0)
    return flat


def _outputs(tensors: list[Any], model: str) -> tuple[list[RequestedOutput], dict[str, bool]]:
    outputs, binary = [], {}
    for index, tensor in enumerate(tensors):
        where = _Where("output", index, model)
        if not isinstance(tensor, dict):
            raise InvalidArgument(f"{where} must be a JSON object, not {_kind(tensor)}")
        name = _field(tensor, "name", str, where, required=True)
        where = _Where("output", name, model)
        parameters = dict(_field(tensor, "parameters", dict, where) or {})
        wanted = parameters.pop("binary_data", None)
        if wanted is not None:
            if not isinstance(wanted, bool):
                raise InvalidArgument(f"{where}: parameter 'binary_data' must be a boolean")
            binary[name] = wanted
        count = parameters.pop("classification", None)
        span = shm_span(parameters, str(where)) if parameters else None
        outputs.append(RequestedOutput(name, count, span))
    return outputs, binary


def encode_response(
    response: InferResponse, binary_default: bool, binary_outputs: Mapping[str, bool]
) -> tuple[list[bytes | memoryview], int | None]:
    """The body of ``response`` as parts to join, and the JSON header's length when binary
    data follows it (None: the body is JSON only)."""
    outputs: list[dict[str, Any]] = []
    tail: list[bytes | memoryview] = []
    for output in response.outputs:
        entry: dict[str, Any] = {
            "name": output.name,
            "datatype": output.datatype,
            "shape": list(output.shape),
        }
        if output.shm is None:  # one in shared memory is sent with no data, no parameters
            if binary_outputs.get(output.name, binary_default):
                data = (
                    serialize_bytes(output.data)
                    if output.datatype == BYTES
                    else tensor_bytes(output.data)
                )
                entry["parameters"] = {"binary_data_size": len(data)}
                tail.append(data)
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
    header = json.dumps(message, separators=(",", ":")).encode()
    return [header, *tail], (len(header) if tail else None)


def json_elements(array: np.ndarray[Any, Any], datatype: str) -> list[Any]:
    """A tensor's elements flat and row-major as JSON values (BYTES as UTF-8 strings, bytes
    that are not UTF-8 escaped as U+DCxx)."""
    flat = array.reshape(-1)
    if datatype == BYTES:
        return [
            item.decode("utf-8", "surrogateescape") if isinstance(item, bytes) else str(item)
            for item in flat
        ]
    values: list[Any] = flat.tolist()
    return values
