"""A ModelInferRequest message as the data plane's InferRequest: the gRPC front end's decoder.

Only the envelope is read here: each input's declaration and where its data lies (its
``raw_input_contents`` entry, its typed ``contents``, or the shared memory its parameters name),
the requested outputs with their options, and the parameters as plain values. The data plane
checks and reads the rest. The two rules that belong to protobuf's layout are checked here,
first, as Triton's clients expect: raw and typed contents never mix, and there is one raw entry
per input not in shared memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...errors import InvalidArgument
from ...pb.inference.grpc_service_pb2 import InferParameter, InferTensorContents, ModelInferRequest
from ..infer_types import ElementValues, InferInput, InferRequest, InputData, RequestedOutput
from ..shared_memory import RequestShm, ShmSpan, shm_span
from .parameters import NO_PARAMETERS, parameter_values

__all__ = ["infer_request"]

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
