"""A ModelInferRequest message as the data plane's InferRequest: the gRPC front end's decoder.

Only the envelope is read here: each input's declaration and where its data lies (its
``raw_input_contents`` entry, its typed ``contents``, or the shared memory its parameters name),
the requested outputs with their options, and the parameters as plain values. The data plane
checks and reads the rest. The two rules that belong to protobuf's layout are checked here,
first, as Triton's clients expect: raw and typed contents never mix, and there is one raw entry
per input not in shared memory.

A client sends the same envelope (model, declarations, outputs: everything but the tensors'
bytes) request after request. An envelope with no id and no parameters, whose inputs are all
plain raw entries and whose outputs carry no options, is decoded once: its declarations and
their key are kept (:data:`DECLARED_ENVELOPES` of them, at most :data:`DECLARED_ENVELOPE_BYTES`
each) and the next request with the same bytes only pairs them with its raw entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...errors import InvalidArgument
from ...pb.inference.grpc_service_pb2 import InferParameter, InferTensorContents, ModelInferRequest
from ..infer_types import (
    DeclarationKey,
    ElementValues,
    InferInput,
    InferRequest,
    InputData,
    RequestedOutput,
)
from ..plans import declaration_key
from ..shared_memory import RequestShm, ShmSpan, shm_span
from .parameters import NO_PARAMETERS, parameter_values
from .received import ReceivedInfer

__all__ = ["DECLARED_ENVELOPES", "DECLARED_ENVELOPE_BYTES", "infer_request", "received_request"]

#: Envelopes whose decoding is kept; when full, the next new one starts the set afresh.
DECLARED_ENVELOPES = 1024
#: Longer envelopes are decoded every time (the kept ones hold at most 1024 x this).
DECLARED_ENVELOPE_BYTES = 1024

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
    "BYTES": "bytes_contents",
}


class _Declared:
    """What one envelope decodes to, less its tensors' bytes."""

    __slots__ = ("inputs", "key", "outputs")

    def __init__(self, request: InferRequest, key: DeclarationKey) -> None:
        self.inputs = key[0]  # (name, datatype, shape) per input, in order
        self.outputs = tuple(request.outputs)
        self.key = key


#: Envelope bytes -> what they decode to; None for one decoded in full every time.
_declared: dict[bytes, _Declared | None] = {}


def received_request(received: ReceivedInfer, shm: RequestShm | None = None) -> InferRequest:
    """The InferRequest of a received ModelInferRequest, its envelope's decoding reused when
    a request before it had the same envelope."""
    envelope = received.envelope()
    if envelope is None:
        return infer_request(received.message, shm, raw=received.raw)
    raw = received.raw
    assert raw is not None  # envelope() moved them out
    if envelope not in _declared:  # not seen: decode it in full, and keep what can be reused
        request = infer_request(received.message, shm, raw=raw)
        if len(envelope) <= DECLARED_ENVELOPE_BYTES:
            if len(_declared) >= DECLARED_ENVELOPES:
                _declared.clear()
            _declared[envelope] = _declaration(request, len(raw))
        return request
    declared = _declared[envelope]
    if declared is None or len(raw) != len(declared.inputs):
        return infer_request(received.message, shm, raw=raw)
    inputs = [
        InferInput(name, datatype, shape, data)
        for (name, datatype, shape), data in zip(declared.inputs, raw, strict=True)
    ]
    outputs = list(declared.outputs)  # the request's own, as a full decoding's
    return InferRequest(inputs, outputs, NO_PARAMETERS, "", None, shm, declaration=declared.key)


def _declaration(request: InferRequest, entries: int) -> _Declared | None:
    """What of ``request`` the next one with its envelope reuses; None when it has more than
    its declarations (data in shared memory or typed contents, outputs with options)."""
    if len(request.inputs) != entries:
        return None
    if not all(type(tensor.data) in (bytes, memoryview) for tensor in request.inputs):
        return None
    key = declaration_key(request.inputs, request.outputs)  # None: outputs with options
    return None if key is None else _Declared(request, key)


def infer_request(
    message: ModelInferRequest,
    shm: RequestShm | None = None,
    deadline: float | None = None,
    raw: Sequence[bytes | memoryview] | None = None,
) -> InferRequest:
    """The InferRequest ``message`` carries; its shared memory is leased through ``shm``.

    ``raw``: its raw_input_contents entries when they were split off the received bytes
    (received.py; views, not copies); None: they are the message's own.
    """
    model = message.model_name
    # Slices, not iteration: a upb repeated field hands its items over in one call.
    tensors = message.inputs[:]
    if raw is None:
        raw = message.raw_input_contents[:]
    inputs = _plain_inputs(tensors, raw) if len(raw) == len(tensors) else None
    if inputs is None:
        inputs = _inputs(message, tensors, raw)
    requested = message.outputs[:]
    outputs = (
        [
            _requested(output, model) if output.parameters else RequestedOutput(output.name)
            for output in requested
        ]
        if requested
        else []
    )
    parameters = message.parameters
    values = parameter_values(parameters) if parameters else NO_PARAMETERS
    return InferRequest(inputs, outputs, values, message.id, deadline, shm)


def _plain_inputs(
    tensors: list[ModelInferRequest.InferInputTensor], raw: Sequence[bytes | memoryview]
) -> list[InferInput] | None:
    """The usual request's inputs, in one pass: one raw entry per input, in order, and no
    input with parameters (shared memory) or typed contents. None when any input is not so:
    ``_inputs`` then reads them all, with its checks in their order."""
    inputs = []
    for tensor, data in zip(tensors, raw, strict=True):
        if tensor.parameters or tensor.HasField("contents"):
            return None
        inputs.append(InferInput(tensor.name, tensor.datatype, tuple(tensor.shape[:]), data))
    return inputs


def _inputs(
    message: ModelInferRequest,
    tensors: list[ModelInferRequest.InferInputTensor],
    raw: Sequence[bytes | memoryview],
) -> list[InferInput]:
    """Every input of ``message``, its shared memory, raw and typed contents checked."""
    model = message.model_name
    spans: list[ShmSpan | None] | None = None  # None: no input names shared memory (usual)
    for index, tensor in enumerate(tensors):
        if tensor.parameters:
            if spans is None:
                spans = [None] * len(tensors)
            spans[index] = _span(tensor.parameters, f"input '{tensor.name}' for model '{model}'")
    if raw:
        _check_raw(message, tensors, spans, raw)
    entries = iter(raw)
    inputs = []
    for index, tensor in enumerate(tensors):
        data: InputData | None = None if spans is None else spans[index]
        if data is None:
            data = next(entries) if raw else _contents(tensor, model)
        inputs.append(InferInput(tensor.name, tensor.datatype, tuple(tensor.shape[:]), data))
    return inputs


def _span(parameters: Mapping[str, InferParameter], what: str) -> ShmSpan | None:
    return shm_span(parameter_values(parameters), what)


def _check_raw(
    message: ModelInferRequest,
    tensors: list[ModelInferRequest.InferInputTensor],
    spans: list[ShmSpan | None] | None,
    raw: Sequence[bytes | memoryview],
) -> None:
    model = message.model_name
    # Checked before any size or shape check: Triton's clients rely on this order.
    for tensor in tensors:
        if tensor.HasField("contents"):
            raise InvalidArgument(
                "contents field must not be specified when using raw_input_contents for "
                f"'{tensor.name}' for model '{model}'"
            )
    # Inputs in shared memory have no raw entry: the entries belong to the others, in order.
    with_raw = len(tensors) if spans is None else sum(span is None for span in spans)
    if len(raw) != with_raw:
        raise InvalidArgument(
            f"expected {with_raw} raw_input_contents entries (one per input not in shared "
            f"memory) but got {len(raw)} for model '{model}'"
        )


def _contents(tensor: ModelInferRequest.InferInputTensor, model: str) -> ElementValues:
    what = f"input '{tensor.name}' for model '{model}'"
    if not tensor.HasField("contents"):
        raise InvalidArgument(f"{what} has no data: send it in raw_input_contents or in contents")
    field = _CONTENTS_FIELD.get(tensor.datatype)
    if field is None:
        raise InvalidArgument(
            f"{what}: {tensor.datatype} has no typed contents field; send it in raw_input_contents"
        )
    contents: InferTensorContents = tensor.contents
    # The repeated field itself, not a copy (millions of elements may come this way): a plain
    # sequence of Python values to the data plane, which makes it an array before any
    # scheduler or backend sees it.
    return ElementValues(getattr(contents, field), field)


def _requested(output: ModelInferRequest.InferRequestedOutputTensor, model: str) -> RequestedOutput:
    """An output with parameters (an output without is just its name)."""
    values = parameter_values(output.parameters)
    span = shm_span(values, f"output '{output.name}' for model '{model}'")
    return RequestedOutput(output.name, values.get("classification"), span)
