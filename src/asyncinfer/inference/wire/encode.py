"""The data plane's InferResponse as ModelInferResponse bytes: the gRPC front end's encoder.

The small header goes through protobuf; every output's data is appended by hand (field tag,
varint length, bytes), which costs a fraction of SerializeToString for large tensors and gives
identical bytes. Each tensor is copied once, into the reply. An output written to shared memory
gets its datatype and shape and an empty raw entry, which keeps raw entries aligned with the
outputs, as Triton's clients read them by position. The same framing wraps a response as a
ModelStreamInferResponse for the stream.
"""

from __future__ import annotations

import functools

from ..._wire import varint
from ...datatypes import BYTES, serialize_bytes, tensor_bytes
from ...pb.inference.grpc_service_pb2 import (
    ModelInferRequest,
    ModelInferResponse,
    ModelStreamInferResponse,
)
from ..infer_types import InferResponse
from .parameters import parameter_messages

__all__ = ["response_bytes", "stream_error", "stream_response"]

_RAW_OUTPUT_TAG = b"\x32"  # ModelInferResponse.raw_output_contents: field 6, length-delimited
_INFER_RESPONSE_TAG = b"\x12"  # ModelStreamInferResponse.infer_response: field 2
_MODEL_NAME_TAG, _MODEL_VERSION_TAG, _ID_TAG, _OUTPUTS_TAG = b"\x0a", b"\x12", b"\x1a", b"\x2a"


def response_bytes(response: InferResponse) -> bytes:
    """The serialized ModelInferResponse of ``response``'s outputs and parameters."""
    frames: list[bytes | memoryview] = [_prefix(response.model_name, response.model_version)]
    if response.id:
        frames.append(_string_field(_ID_TAG, response.id))
    raw: list[bytes | memoryview] = []
    for output in response.outputs:
        array = output.data
        frames.append(_output_entry(output.name, output.datatype, array.shape))
        if output.shm is not None:
            data: bytes | memoryview = b""
            size = 0
        elif output.datatype == BYTES:
            data = serialize_bytes(array)
            size = len(data)
        else:
            data = tensor_bytes(array)
            size = data.nbytes
        raw += (_RAW_OUTPUT_TAG, _length(size), data)
    if response.parameters:
        # Protobuf merges the map entries of repeated fields, so they may follow the rest.
        params = ModelInferResponse(parameters=parameter_messages(response.parameters))
        raw.append(params.SerializeToString())
    # Fields in number order, as protobuf writes them: name, version, id, outputs, then the raw
    # entries. One join, so each tensor is copied exactly once, into the reply.
    frames += raw
    return b"".join(frames)


def stream_response(
    message: ModelInferRequest, response: InferResponse
) -> bytes | ModelStreamInferResponse:
    """One item of ModelStreamInfer for ``response`` to ``message``: the framed response, or
    its error as the stream's ``error_message``."""
    if response.error is not None:
        return stream_error(message, response.error.message)
    body = response_bytes(response)
    return _INFER_RESPONSE_TAG + varint(len(body)) + body


def stream_error(message: ModelInferRequest, text: str) -> ModelStreamInferResponse:
    """A stream response carrying ``text`` as the error of ``message``."""
    return ModelStreamInferResponse(
        error_message=text,
        infer_response=ModelInferResponse(
            model_name=message.model_name, model_version=message.model_version, id=message.id
        ),
    )


# The parts of a reply that repeat from one request to the next are framed once and reused:
# small bounded caches, keyed by what determines their bytes.


def _string_field(tag: bytes, value: str) -> bytes:
    encoded = value.encode()
    return tag + varint(len(encoded)) + encoded


@functools.lru_cache(maxsize=1024)
def _length(size: int) -> bytes:
    """A raw entry's length as a varint (the sizes of a model's outputs repeat)."""
    return varint(size)


@functools.lru_cache(maxsize=1024)
def _prefix(model: str, version: str) -> bytes:
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
