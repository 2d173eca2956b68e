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
import functools
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

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
from ..plans import declaration_key
from ..shared_memory import RequestShm, shm_span

__all__ = [
    "HEADER_LENGTH",
    "DecodedRequest",
    "HeaderPlans",
    "decode_request",
    "encode_response",
    "parse_json",
]

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
    """The JSON value of ``text``; InvalidArgument saying where it is malformed.

    The value is what ``json.loads`` makes of it: orjson parses it when it can (a few times
    faster), and json itself when orjson refuses it (json's error texts and positions, and
    what json accepts beyond the standard: NaN, Infinity, lone surrogates, UTF-16 and -32)
    or when the text has a run of 19 or more digits (orjson reads an integer past 64 bits
    as a float; json, exactly).
    """
    data = bytes(text)
    value = _plain_json(data)
    if value is not _REFUSED:
        return value
    try:  # json says what is wrong, or accepts what orjson does not
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(
            f"failed to parse the {what} JSON buffer: {exc.msg} at offset {exc.pos}"
        ) from None
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            f"failed to parse the {what} JSON buffer: not UTF-8 at offset {exc.start}"
        ) from None
    except RecursionError:
        # orjson refuses past 1,024 levels, and json then runs out of Python's stack.
        raise InvalidArgument(
            f"failed to parse the {what} JSON buffer: nested too deeply (JSON arrays and "
            "objects may nest about 1,000 levels at most)"
        ) from None


_DIGITS_AS_NINES = bytes.maketrans(b"0123456789", b"9" * 10)
_LONG_DIGITS = b"9" * 19  # the shortest integer that may be past 64 bits


def decode_request(
    body: bytes,
    header_length: str | None,
    model: str,
    shm: RequestShm | None,
    plans: HeaderPlans | None = None,
) -> DecodedRequest:
    """The request ``body`` carries for ``model`` (``header_length``: the header's value).

    With ``plans``, a request met before is not checked again: a JSON header met before (byte
    for byte, for this model) whose inputs are all binary is not parsed again, and a JSON body
    that is one met before but for its inputs' ``data`` and its ``id`` only has those read.
    Either way its plan makes the same request as decoding it in full would.
    """
    split = _split(body, header_length)
    key: _Key | None = None
    if plans is None:
        message = parse_json(body if split == len(body) else memoryview(body)[:split], "request")
    elif split < len(body):
        if split <= plans.max_bytes:
            key = (model, body[:split], False)
            plan = plans.get(key)
            if plan is not None and plan.binary_bytes == len(body) - split:
                binary = memoryview(body)[split:]
                data: list[InputData] = [binary[start:end] for start, end in plan.spans]
                return plan.request(data, plan.id, shm)
        message = parse_json(memoryview(body)[:split], "request")
    else:
        message = _plain_json(body)
        if message is _REFUSED:
            message = parse_json(body, "request")
        else:
            planned, key = _planned_json(message, model, shm, plans)
            if planned is not None:
                return planned
    where = _Where("request", "", model)
    if not isinstance(message, dict):
        raise InvalidArgument(f"{where} must be a JSON object, not {_kind(message)}")
    binary = memoryview(body)[split:]
    inputs = _inputs(_field(message, "inputs", list, where, required=True), binary, model)
    raw = message.get("parameters")
    parameters = {} if raw is None else dict(_field(message, "parameters", dict, where))
    binary_default = parameters.pop("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise InvalidArgument(f"{where}: parameter 'binary_data_output' must be a boolean")
    outputs, binary_outputs = _outputs(_field(message, "outputs", list, where) or [], model)
    request_id = _field(message, "id", str, where) or ""
    request = InferRequest(inputs, outputs, parameters, request_id, None, shm)
    decoded = DecodedRequest(request, binary_default, binary_outputs)
    if key is not None and plans is not None:
        plans.learn(key, decoded)
    return decoded


def _planned_json(
    message: Any, model: str, shm: RequestShm | None, plans: HeaderPlans
) -> tuple[DecodedRequest | None, _Key | None]:
    """The request a plan makes of the parsed JSON body ``message`` (None when there is no
    plan for it yet), and its plan's key (None when such a body is not planned)."""
    values = _take_values(message)
    if values is None:
        return None, None
    text = _unvarying(message)
    _put_back(message, values)
    if text is None or len(text) > plans.max_bytes:
        return None, None
    key = (model, text, True)
    plan = plans.get(key)
    if plan is None:
        return None, key
    elements: list[InputData] = [ElementValues(data, "data") for data in values[1:]]
    return plan.request(elements, values[0] or "", shm), key


def _plain_json(body: bytes) -> Any:
    """The JSON value of ``body`` when orjson parses it as json would; _REFUSED otherwise (for
    json to parse, or to say what is wrong)."""
    if _LONG_DIGITS in body.translate(_DIGITS_AS_NINES):
        return _REFUSED
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _REFUSED


#: What _plain_json gives for a text that orjson does not parse as json would.
_REFUSED = object()


def _take_values(message: Any) -> list[Any] | None:
    """The request's ``id`` and each input's ``data``, set to null in ``message`` (put them
    back with :func:`_put_back`); None, with ``message`` untouched, unless every input is an
    object with a flat array of ``data`` and the id is a string, null or absent."""
    if type(message) is not dict:
        return None
    inputs = message.get("inputs")
    request_id = message.get("id")
    if type(inputs) is not list or (request_id is not None and type(request_id) is not str):
        return None
    values: list[Any] = [request_id]
    for tensor in inputs:
        data = tensor.get("data") if type(tensor) is dict else None
        if type(data) is not list or (data and type(data[0]) is list):
            return None  # nested data, and anything else, take the full decode
        values.append(data)
    if request_id is not None:
        message["id"] = None
    for tensor in inputs:
        tensor["data"] = None
    return values


def _unvarying(message: dict[str, Any]) -> bytes | None:
    """``message`` (its data and id taken) as orjson writes it: exactly what orjson parsed, with
    no NaN, no integer past 64 bits and no lone surrogate to write; None past the nesting orjson
    writes (255 levels, where it reads 1,024)."""
    try:
        return orjson.dumps(message)
    except orjson.JSONEncodeError:
        return None


def _put_back(message: dict[str, Any], values: list[Any]) -> None:
    if values[0] is not None:
        message["id"] = values[0]
    for tensor, data in zip(message["inputs"], values[1:], strict=True):
        tensor["data"] = data


class _Plan:
    """What a request decoded to, to make it again with another request's input data: each
    input's name, datatype and shape (and its byte range, when binary), and the request's
    options."""

    __slots__ = ("binary_bytes", "binary_default", "binary_outputs", "declaration", "id",
                 "inputs", "outputs", "parameters", "spans")  # fmt: skip

    def __init__(self, decoded: DecodedRequest) -> None:
        request = decoded.request
        self.inputs = [(tensor.name, tensor.datatype, tensor.shape) for tensor in request.inputs]
        #: Each binary input's byte range in the binary data after the header.
        self.spans: list[tuple[int, int]] = []
        offset = 0
        for tensor in request.inputs:
            if type(tensor.data) is memoryview:
                end = offset + tensor.data.nbytes
                self.spans.append((offset, end))
                offset = end
        self.binary_bytes = offset
        self.outputs = [(output.name, output.class_count) for output in request.outputs]
        self.parameters = dict(request.parameters)
        self.id = request.id
        self.binary_default = decoded.binary_default
        self.binary_outputs = dict(decoded.binary_outputs)
        #: Handed on with each request, so that the data plane's plan lookup does not work it
        #: out again (None: outputs with options, planned per request).
        self.declaration = declaration_key(request.inputs, request.outputs)

    def request(
        self, data: list[InputData], request_id: str, shm: RequestShm | None
    ) -> DecodedRequest:
        """A new request with each input's ``data`` and ``request_id``: what decoding it in
        full would make."""
        inputs = [
            InferInput(name, datatype, shape, values)
            for (name, datatype, shape), values in zip(self.inputs, data, strict=True)
        ]
        outputs = [RequestedOutput(name, count) for name, count in self.outputs]
        request = InferRequest(
            inputs, outputs, dict(self.parameters), request_id, None, shm,
            declaration=self.declaration,
        )  # fmt: skip
        return DecodedRequest(request, self.binary_default, dict(self.binary_outputs))


class HeaderPlans:
    """The plans of the last ``size`` distinct requests a client sent again (each key at most
    ``max_bytes``), keyed by model and what does not vary between its requests: a binary
    request's JSON header when every input is binary, or a JSON request's body less its
    inputs' ``data`` and its id when every input has flat ``data``. A request met again (a
    client sending one kind of request: the same model, names, shapes and options) is not
    checked again.

    A plan is made at a key's second sighting, so that requests that never repeat (new
    parameters in each, say) cost a set entry, not a plan each."""

    def __init__(self, size: int = 128, max_bytes: int = 4096) -> None:
        self.size, self.max_bytes = size, max_bytes
        self._plans: dict[_Key, _Plan] = {}
        self._seen: dict[_Key, None] = {}  # keys met once, oldest first

    def get(self, key: _Key) -> _Plan | None:
        return self._plans.get(key)

    def learn(self, key: _Key, decoded: DecodedRequest) -> None:
        """Keep the plan of ``decoded`` (decoded from a request of ``key``) if it can be
        reused (every input binary, or every input JSON ``data`` as the key says; no shared
        memory; parameters immutable values) and the key was met before."""
        request = decoded.request
        kind = ElementValues if key[2] else memoryview
        if (
            not all(type(tensor.data) is kind for tensor in request.inputs)
            or any(output.shm is not None for output in request.outputs)
            or not all(type(value) in _PLAIN for value in request.parameters.values())
        ):
            return
        if key not in self._seen:
            _bounded_put(self._seen, key, None, self.size)
            return
        del self._seen[key]
        _bounded_put(self._plans, key, _Plan(decoded), self.size)


#: A plan's key: the model, the request's text that does not vary, and whether it is JSON
#: (its body less data and id) or not (a binary request's header).
_Key = tuple[str, bytes, bool]


def _bounded_put(table: dict[Any, Any], key: Any, value: Any, size: int) -> None:
    """``table[key] = value``, first dropping the oldest entry when it holds ``size``."""
    if len(table) >= size:
        del table[next(iter(table))]
    table[key] = value


#: Parameter values a plan may share between requests: immutable.
_PLAIN = frozenset({str, int, float, bool, type(None)})


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
        if not isinstance(tensor, dict):
            where = _Where("input", index, model)
            raise InvalidArgument(f"{where} must be a JSON object, not {_kind(tensor)}")
        # Each field read and type-checked inline; _field only to say what is wrong.
        name = tensor.get("name")
        if type(name) is not str:
            name = _field(tensor, "name", str, _Where("input", index, model), required=True)
        where = _Where("input", name, model)
        datatype = tensor.get("datatype")
        if type(datatype) is not str:
            datatype = _field(tensor, "datatype", str, where, required=True)
        shape = tensor.get("shape")
        if type(shape) is not list:
            shape = _field(tensor, "shape", list, where, required=True)
        shape = _shape(shape, where)
        parameters = tensor.get("parameters")
        size = None
        data: InputData | None = None
        if parameters is not None:
            if type(parameters) is not dict:
                parameters = _field(tensor, "parameters", dict, where)
            size = parameters.get("binary_data_size")
            if not _SHM_PARAMETERS.isdisjoint(parameters):
                data = shm_span(parameters, str(where))
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


#: The parameters that put a tensor in shared memory (shm_span reads them, and only them).
_SHM_PARAMETERS = frozenset(
    ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")
)
_INT = frozenset((int,))


def _shape(value: list[Any], where: _Where) -> tuple[int, ...]:
    if not _INT.issuperset(map(type, value)) and not all(
        isinstance(d, int) and not isinstance(d, bool) for d in value
    ):
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
        if not isinstance(tensor, dict):
            where = _Where("output", index, model)
            raise InvalidArgument(f"{where} must be a JSON object, not {_kind(tensor)}")
        name = tensor.get("name")
        if type(name) is not str:
            name = _field(tensor, "name", str, _Where("output", index, model), required=True)
        parameters = tensor.get("parameters")
        count = span = None
        if parameters is not None:
            where = _Where("output", name, model)
            if type(parameters) is not dict:
                parameters = _field(tensor, "parameters", dict, where)
            wanted = parameters.get("binary_data")
            if wanted is not None:
                if not isinstance(wanted, bool):
                    raise InvalidArgument(f"{where}: parameter 'binary_data' must be a boolean")
                binary[name] = wanted
            count = parameters.get("classification")
            if not _SHM_PARAMETERS.isdisjoint(parameters):
                span = shm_span(parameters, str(where))
        outputs.append(RequestedOutput(name, count, span))
    return outputs, binary


def encode_response(
    response: InferResponse, binary_default: bool, binary_outputs: Mapping[str, bool]
) -> tuple[list[bytes | memoryview], int | None]:
    """The body of ``response`` as parts to join, and the JSON header's length when binary
    data follows it (None: the body is JSON only).

    The header is written piece by piece, byte for byte what ``json.dumps(message,
    separators=(",", ":"))`` writes for it (the codec's tests compare the two): strings with
    the encoder's own escaping, integer and boolean elements by orjson and finite floats as
    their ``repr`` (both what the encoder writes for them), anything else through the
    encoder itself.
    """
    outputs: list[str] = []
    tail: list[bytes | memoryview] = []
    for output in response.outputs:
        entry = _entry_start(output.name, output.datatype, output.data.shape)
        if output.shm is None:  # one in shared memory is sent with no data, no parameters
            if binary_outputs.get(output.name, binary_default):
                data = (
                    serialize_bytes(output.data)
                    if output.datatype == BYTES
                    else tensor_bytes(output.data)
                )
                entry += f',"parameters":{{"binary_data_size":{len(data)}}}'
                tail.append(data)
            else:
                entry += f',"data":{_elements_json(output.data, output.datatype)}'
        outputs.append(entry + "}")
    head = _head_start(response.model_name, response.model_version)
    if response.id:
        head += f',"id":{_quote(response.id)}'
    if response.parameters:
        head += f',"parameters":{_ENCODER.encode(response.parameters)}'
    header = f'{head},"outputs":[{",".join(outputs)}]}}'.encode()
    return [header, *tail], (len(header) if tail else None)


#: What ``json.dumps(value, separators=(",", ":"))`` encodes with, made once.
_ENCODER = json.JSONEncoder(separators=(",", ":"))
#: The encoder's own string escaping (ensure_ascii), as it writes every string.
_quote = json.encoder.encode_basestring_ascii
#: Float types whose ``tolist()`` gives Python floats, written by the encoder as their repr.
_FLOATS = (np.float16, np.float32, np.float64)


@functools.lru_cache(maxsize=1024)
def _entry_start(name: str, datatype: str, shape: tuple[int, ...]) -> str:
    """An output's JSON up to its data: the same for every response of a model and shape."""
    return (
        f'{{"name":{_quote(name)},"datatype":{_quote(datatype)},'
        f'"shape":{_numbers_json(list(shape))}'
    )


@functools.lru_cache(maxsize=256)
def _head_start(model_name: str, model_version: str) -> str:
    return f'{{"model_name":{_quote(model_name)},"model_version":{_quote(model_version)}'


def _numbers_json(values: list[Any]) -> str:
    """A list of Python ints (or finite floats) as the encoder writes it: the list's repr
    is the same text with a space after each comma, and no other spaces."""
    return str(values).replace(" ", "")


def _elements_json(array: np.ndarray[Any, Any], datatype: str) -> str:
    """A tensor's ``data`` as JSON: :func:`json_elements`, encoded."""
    values = json_elements(array, datatype)
    if datatype != BYTES:
        kind = array.dtype.kind
        if kind in "iub":  # Python ints and bools: orjson writes them as json does
            text: str = orjson.dumps(values).decode()
            return text
        if array.dtype.type in _FLOATS and bool(np.isfinite(array).all()):
            return _numbers_json(values)  # orjson writes 1e16 where json writes 1e+16
    text = _ENCODER.encode(values)
    return text


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
