"""Tensor codecs of the inference protocol: request inputs to numpy, numpy to a framed reply.

``decode_inputs`` checks a ModelInferRequest against a model's Signature and returns numpy
arrays; raw inputs are read-only views over the received bytes (no copy). ``encode_response``
writes the ModelInferResponse: the small header through protobuf, every raw output appended by
hand (field tag, varint length, bytes), which costs a fraction of SerializeToString for large
tensors and gives identical bytes. Both are the single place where tensor data is resolved, so
the shared-memory extension plugs in here (a ``RequestShm`` scope passed to both) rather than
in the RPCs.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..._wire import varint
from ...datatypes import BYTES, Datatype, deserialize_bytes, from_numpy, serialize_bytes, shape_fits
from ...errors import Internal, InvalidArgument
from ...pb.inference.grpc_service_pb2 import (
    InferTensorContents,
    ModelInferRequest,
    ModelInferResponse,
)
from ...signature import Signature, TensorSpec
from ..shared_memory import RequestShm, ShmSpan, shm_span

__all__ = [
    "OutputPlan",
    "decode_inputs",
    "encode_response",
    "plan_outputs",
    "varint",
]

Array = npt.NDArray[Any]
SHM_PARAMETERS = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")
_RAW_OUTPUT_TAG = b"\x32"  # ModelInferResponse.raw_output_contents: field 6, length-delimited
_LITTLE = ("<", "|") if sys.byteorder == "big" else ("<", "|", "=")

# Which typed-contents field carries each datatype (FP16 and BF16 have none: raw only).
_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    BYTES: "bytes_contents",
}


# --------------------------------------------------------------------------- inputs


def decode_inputs(
    request: ModelInferRequest, sig: Signature, shm: RequestShm | None = None
) -> tuple[dict[str, Array], int]:
    """The request's inputs as arrays, checked against ``sig``; and the batch size (1 if none).

    Inputs in shared memory are read through ``shm``, whose leases keep them mapped.
    """
    model = sig.model
    raw = request.raw_input_contents
    # Most requests carry no tensor parameters at all: skip the shared-memory parse for them.
    spans = [
        shm_span(t.parameters, f"input '{t.name}' for model '{model}'") if t.parameters else None
        for t in request.inputs
    ]
    if raw:
        # Checked before any size or shape check: Triton's clients rely on this order.
        for tensor in request.inputs:
            if tensor.HasField("contents"):
                raise InvalidArgument(
                    "contents field must not be specified when using raw_input_contents for "
                    f"'{tensor.name}' for model '{model}'"
                )
        # Inputs in shared memory have no raw entry: the entries belong to the others, in order.
        with_raw = sum(span is None for span in spans)
        if len(raw) != with_raw:
            raise InvalidArgument(
                f"expected {with_raw} raw_input_contents entries (one per input not in shared "
                f"memory) but got {len(raw)} for model '{model}'"
            )
    _check_input_names(request, sig)
    arrays: dict[str, Array] = {}
    batch_sizes: set[int] = set()
    raw_entries = iter(raw)
    for tensor, span in zip(request.inputs, spans, strict=True):
        spec = sig.inputs[tensor.name]
        shape = _check_input_shape(tensor, spec, sig)
        if sig.max_batch_size > 0:
            batch_sizes.add(shape[0])
        what = f"input '{tensor.name}' for model '{model}'"
        if span is not None:
            arrays[tensor.name] = _from_shm(span, spec.datatype, shape, shm, what)
            continue
        payload = next(raw_entries) if raw else None
        arrays[tensor.name] = input_data(tensor, spec, shape, payload, model)
    if len(batch_sizes) > 1:
        raise InvalidArgument(
            f"inputs of a request to model '{model}' must have the same batch size, got "
            f"{sorted(batch_sizes)}"
        )
    return arrays, batch_sizes.pop() if batch_sizes else 1


def _from_shm(
    span: ShmSpan,
    datatype: Datatype,
    shape: tuple[int, ...],
    shm: RequestShm | None,
    what: str,
) -> Array:
    if shm is None:
        raise InvalidArgument(
            f"{what} refers to shared memory region '{span.region}', but shared memory is not "
            "available on this call"
        )
    return shm.read_input(span, datatype, shape, what)


def _check_input_names(request: ModelInferRequest, sig: Signature) -> None:
    if [tensor.name for tensor in request.inputs] == sig.required:
        return  # the usual request: every input once, in config order
    seen: list[str] = []
    for tensor in request.inputs:
        if tensor.name not in sig.inputs:
            raise InvalidArgument(
                f"unexpected inference input '{tensor.name}' for model '{sig.model}'; "
                f"its inputs are {list(sig.inputs)}"
            )
        if tensor.name in seen:
            raise InvalidArgument(
                f"input '{tensor.name}' appears more than once in a request to model '{sig.model}'"
            )
        seen.append(tensor.name)
    missing = [n for n, s in sig.inputs.items() if n not in seen and not s.optional]
    if missing:
        raise InvalidArgument(
            f"expected {len(sig.inputs)} inputs but got {len(seen)} inputs for model "
            f"'{sig.model}'. Got input(s) {seen}, but missing required input(s) {missing}. "
            "Please provide all required input(s)."
        )


def _check_input_shape(
    tensor: ModelInferRequest.InferInputTensor, spec: TensorSpec, sig: Signature
) -> tuple[int, ...]:
    model, name = sig.model, tensor.name
    if tensor.datatype != spec.datatype.wire:
        raise InvalidArgument(
            f"inference input '{name}' data-type is '{tensor.datatype}', but model '{model}' "
            f"expects '{spec.datatype.wire}'"
        )
    shape = tuple(tensor.shape)
    if shape and min(shape) < 0:
        raise InvalidArgument(
            f"inference input '{name}' for model '{model}' has a negative dimension in its "
            f"shape {list(shape)}; every dimension must be >= 0"
        )
    expected = sig.shapes[name]
    if sig.max_batch_size > 0 and len(shape) == len(expected) and shape:
        if shape[0] > sig.max_batch_size:
            raise InvalidArgument(
                f"inference request batch-size must be <= {sig.max_batch_size} for "
                f"'{model}' (input '{name}' has batch size {shape[0]})"
            )
        if shape[0] == 0:
            raise InvalidArgument(
                f"inference input '{name}' for model '{model}' has batch size 0; it must be "
                f"1..{sig.max_batch_size}"
            )
    if not shape_fits(shape, expected):
        raise InvalidArgument(
            f"unexpected shape for input '{name}' for model '{model}'. Expected "
            f"{list(expected)}, got {list(shape)}"
        )
    return shape


def input_data(
    tensor: ModelInferRequest.InferInputTensor,
    spec: TensorSpec,
    shape: tuple[int, ...],
    payload: bytes | None,
    model: str,
) -> Array:
    """One input's array from raw bytes or typed contents (shared memory: ``_from_shm``)."""
    name = tensor.name
    what = f"input '{name}' for model '{model}'"
    count = math.prod(shape)
    if payload is not None:
        return _from_raw(payload, spec.datatype, shape, count, what)
    if tensor.HasField("contents"):
        return _from_contents(tensor.contents, spec.datatype, shape, count, what)
    raise InvalidArgument(f"{what} has no data: send it in raw_input_contents or in contents")


def _from_raw(
    payload: bytes, datatype: Datatype, shape: tuple[int, ...], count: int, what: str
) -> Array:
    if datatype.wire == BYTES:
        return deserialize_bytes(payload, count, what=what).reshape(shape)
    expected = count * datatype.itemsize
    if len(payload) != expected:
        raise InvalidArgument(
            f"unexpected total byte size {len(payload)} for {what}, expecting {expected} "
            f"({count} elements of {datatype.wire} for shape {list(shape)})"
        )
    # A read-only view over the received message's bytes: the request owns the buffer and
    # lives until the model returns, so no copy is needed.
    return np.frombuffer(payload, dtype=datatype.dtype).reshape(shape)


def _from_contents(
    contents: InferTensorContents,
    datatype: Datatype,
    shape: tuple[int, ...],
    count: int,
    what: str,
) -> Array:
    field = _CONTENTS_FIELD.get(datatype.wire)
    if field is None:
        raise InvalidArgument(
            f"{what}: {datatype.wire} has no typed contents field; send it in raw_input_contents"
        )
    values = getattr(contents, field)
    if len(values) != count:
        raise InvalidArgument(
            f"unexpected number of elements {len(values)} in {field} of {what}, expecting "
            f"{count} for shape {list(shape)}"
        )
    if datatype.wire == BYTES:
        array = np.empty(count, dtype=np.object_)
        array[:] = list(values)
        return array.reshape(shape)
    # The protobuf field already bounds 32- and 64-bit values; narrower types need a check.
    wide = np.array(values, dtype=np.uint64 if field == "uint64_contents" else None)
    if datatype.dtype.kind in "iu" and datatype.dtype.itemsize < 4 and count:
        info = np.iinfo(datatype.dtype)
        if int(wide.min()) < info.min or int(wide.max()) > info.max:
            raise InvalidArgument(
                f"{field} of {what} holds values outside the range of {datatype.wire}"
            )
    return wide.astype(datatype.dtype).reshape(shape)


# --------------------------------------------------------------------------- outputs


@dataclasses.dataclass(frozen=True, slots=True)
class OutputPlan:
    """One output the reply carries, in request order: its spec, classification count, and
    the shared memory it is written to (None: inline)."""

    spec: TensorSpec
    class_count: int = 0
    shm: ShmSpan | None = None


# The plan of a request that names no outputs, per Signature (weakly held: unloads free it).
_ALL_OUTPUTS: weakref.WeakKeyDictionary[Signature, list[OutputPlan]] = weakref.WeakKeyDictionary()


def plan_outputs(request: ModelInferRequest, sig: Signature) -> list[OutputPlan]:
    """The outputs to send: those requested, in request order, or all in config order."""
    if not request.outputs:
        return _ALL_OUTPUTS.get(sig) or _ALL_OUTPUTS.setdefault(
            sig, [OutputPlan(spec) for spec in sig.outputs.values()]
        )
    plans: list[OutputPlan] = []
    for requested in request.outputs:
        spec = sig.outputs.get(requested.name)
        if spec is None:
            raise InvalidArgument(
                f"unexpected inference output '{requested.name}' for model '{sig.model}'; "
                f"its outputs are {list(sig.outputs)}"
            )
        what = f"output '{requested.name}' for model '{sig.model}'"
        span = shm_span(requested.parameters, what)
        for other in plans:
            if span is not None and other.shm is not None and span.overlaps(other.shm):
                raise InvalidArgument(
                    f"{what}: bytes [{span.offset}, {span.offset + span.byte_size}) of shared "
                    f"memory region '{span.region}' overlap those of output "
                    f"'{other.spec.name}' [{other.shm.offset}, "
                    f"{other.shm.offset + other.shm.byte_size})"
                )
        plans.append(OutputPlan(spec, _class_count(requested, sig.model), span))
    return plans


def _class_count(requested: ModelInferRequest.InferRequestedOutputTensor, model: str) -> int:
    if "classification" not in requested.parameters:
        return 0
    count = requested.parameters["classification"].int64_param
    if count < 1:
        raise InvalidArgument(
            f"classification count of output '{requested.name}' for model '{model}' must be "
            f">= 1, not {count}"
        )
    return count


def check_output(
    name: str, array: object, spec: TensorSpec, model: str, batch_size: int | None = None
) -> Array:
    """A model's output array, checked against its config; a mismatch is the model's bug.

    ``batch_size`` is the request's batch size when the model batches (None when it does not).
    """
    if not isinstance(array, np.ndarray):
        raise Internal(
            f"model '{model}' returned output '{name}' as {type(array).__name__}, not a numpy array"
        )
    datatype = from_numpy(array.dtype)
    if datatype is None or datatype.wire != spec.datatype.wire:
        got = datatype.wire if datatype else str(array.dtype)
        raise Internal(
            f"model '{model}' returned output '{name}' as {got}, but its config declares "
            f"{spec.datatype.wire}"
        )
    expected = spec.dims if batch_size is None else (batch_size, *spec.dims)
    if not shape_fits(array.shape, expected):
        raise Internal(
            f"model '{model}' returned output '{name}' with shape {list(array.shape)}, but "
            f"its config declares {list(expected)} for this request"
        )
    return array


def encode_response(
    request: ModelInferRequest,
    model: str,
    version: str,
    outputs: Sequence[tuple[str, str, Array]],
    spans: Sequence[ShmSpan | None] = (),
    shm: RequestShm | None = None,
) -> bytes:
    """A serialized ModelInferResponse for ``outputs`` (name, wire datatype, array), in order.

    An output with a span in ``spans`` is written to that shared memory through ``shm`` and
    gets an empty raw entry, so raw entries stay aligned with the outputs.
    """
    frames: list[bytes | memoryview] = [_response_prefix(model, version)]
    if request.id:
        frames.append(_string_field(_ID_TAG, request.id))
    raw: list[bytes | memoryview] = []
    for index, (name, datatype, array) in enumerate(outputs):
        frames.append(_output_entry(name, datatype, array.shape))
        data = serialize_bytes(array) if datatype == BYTES else _raw_view(array)
        span = spans[index] if index < len(spans) else None
        if span is not None and shm is not None:
            shm.write_output(span, data, f"output '{name}' for model '{model}'")
            data = b""
        raw += (_RAW_OUTPUT_TAG, varint(len(data)), data)
    # Fields in number order, as protobuf writes them: name, version, id, outputs, then the raw
    # entries. One join, so each tensor is copied exactly once, into the reply.
    return b"".join((*frames, *raw))


# The parts of a reply that repeat from one request to the next are framed once and reused:
# small bounded caches, keyed by what determines their bytes.
_MODEL_NAME_TAG, _MODEL_VERSION_TAG, _ID_TAG, _OUTPUTS_TAG = b"\x0a", b"\x12", b"\x1a", b"\x2a"


def _string_field(tag: bytes, value: str) -> bytes:
    encoded = value.encode()
    return tag + varint(len(encoded)) + encoded


@functools.lru_cache(maxsize=1024)
def _response_prefix(model: str, version: str) -> bytes:
    """ModelInferResponse fields 1 and 2 (model_name, model_version), as protobuf frames them."""
    return (_string_field(_MODEL_NAME_TAG, model) if model else b"") + (
        _string_field(_MODEL_VERSION_TAG, version) if version else b""
    )


@functools.lru_cache(maxsize=4096)
def _output_entry(name: str, datatype: str, shape: tuple[int, ...]) -> bytes:
    """One ModelInferResponse.outputs entry (field 5): the tensor's name, datatype and shape."""
    body = ModelInferResponse.InferOutputTensor(
        name=name, datatype=datatype, shape=shape
    ).SerializeToString()
    return _OUTPUTS_TAG + varint(len(body)) + body


def _raw_view(array: Array) -> memoryview:
    # A view, not a copy: the one copy happens when the frames are joined into the reply.
    if array.flags.c_contiguous and array.dtype.byteorder in _LITTLE:
        return memoryview(array.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
    contiguous = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return memoryview(contiguous.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
