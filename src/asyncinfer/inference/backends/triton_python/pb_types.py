"""pb_utils' tensors, datatypes, errors and logger: Triton's python-backend names over
asyncinfer's one datatype table (``asyncinfer.datatypes``).

Everything runs on the CPU in process: a Tensor is a numpy array with a name, ``is_cpu()`` is
always True, and DLPack goes through numpy's own ``__dlpack__`` / ``np.from_dlpack``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ....datatypes import (
    DATATYPES,
    as_array,
    deserialize_bytes,
    from_config,
    from_numpy,
    from_wire,
    serialize_bytes,
)
from ....errors import (
    AlreadyExists,
    Cancelled,
    Internal,
    InvalidArgument,
    NotFound,
    RpcError,
    Unavailable,
    Unimplemented,
    Unknown,
)
from ... import python_model

__all__ = [
    "TRITONSERVER_REQUEST_FLAG_SEQUENCE_END",
    "TRITONSERVER_REQUEST_FLAG_SEQUENCE_START",
    "TRITONSERVER_REQUEST_RELEASE_ALL",
    "TRITONSERVER_REQUEST_RELEASE_RESCHEDULE",
    "TRITONSERVER_RESPONSE_COMPLETE_FINAL",
    "TRITONSERVER_TYPE_BF16",
    "TRITONSERVER_TYPE_BOOL",
    "TRITONSERVER_TYPE_BYTES",
    "TRITONSERVER_TYPE_FP16",
    "TRITONSERVER_TYPE_FP32",
    "TRITONSERVER_TYPE_FP64",
    "TRITONSERVER_TYPE_INT8",
    "TRITONSERVER_TYPE_INT16",
    "TRITONSERVER_TYPE_INT32",
    "TRITONSERVER_TYPE_INT64",
    "TRITONSERVER_TYPE_INVALID",
    "TRITONSERVER_TYPE_UINT8",
    "TRITONSERVER_TYPE_UINT16",
    "TRITONSERVER_TYPE_UINT32",
    "TRITONSERVER_TYPE_UINT64",
    "LogLevel",
    "Logger",
    "Tensor",
    "TritonError",
    "TritonModelException",
    "deserialize_bytes_tensor",
    "get_input_config_by_name",
    "get_input_tensor_by_name",
    "get_output_config_by_name",
    "get_output_tensor_by_name",
    "numpy_to_triton_type",
    "serialize_byte_tensor",
    "triton_string_to_numpy",
    "triton_to_numpy_type",
    "unsupported",
]

TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1
TRITONSERVER_REQUEST_FLAG_SEQUENCE_START = 1
TRITONSERVER_REQUEST_FLAG_SEQUENCE_END = 2
TRITONSERVER_REQUEST_RELEASE_ALL = 1
TRITONSERVER_REQUEST_RELEASE_RESCHEDULE = 2

# TRITONSERVER_DataType values (tritonserver.h).
TRITONSERVER_TYPE_INVALID = 0
TRITONSERVER_TYPE_BOOL = 1
TRITONSERVER_TYPE_UINT8 = 2
TRITONSERVER_TYPE_UINT16 = 3
TRITONSERVER_TYPE_UINT32 = 4
TRITONSERVER_TYPE_UINT64 = 5
TRITONSERVER_TYPE_INT8 = 6
TRITONSERVER_TYPE_INT16 = 7
TRITONSERVER_TYPE_INT32 = 8
TRITONSERVER_TYPE_INT64 = 9
TRITONSERVER_TYPE_FP16 = 10
TRITONSERVER_TYPE_FP32 = 11
TRITONSERVER_TYPE_FP64 = 12
TRITONSERVER_TYPE_BYTES = 13
TRITONSERVER_TYPE_BF16 = 14
_TYPE_CODES = {
    "BOOL": TRITONSERVER_TYPE_BOOL,
    "UINT8": TRITONSERVER_TYPE_UINT8,
    "UINT16": TRITONSERVER_TYPE_UINT16,
    "UINT32": TRITONSERVER_TYPE_UINT32,
    "UINT64": TRITONSERVER_TYPE_UINT64,
    "INT8": TRITONSERVER_TYPE_INT8,
    "INT16": TRITONSERVER_TYPE_INT16,
    "INT32": TRITONSERVER_TYPE_INT32,
    "INT64": TRITONSERVER_TYPE_INT64,
    "FP16": TRITONSERVER_TYPE_FP16,
    "FP32": TRITONSERVER_TYPE_FP32,
    "FP64": TRITONSERVER_TYPE_FP64,
    "BYTES": TRITONSERVER_TYPE_BYTES,
    "BF16": TRITONSERVER_TYPE_BF16,
}
_WIRE_BY_CODE = {code: wire for wire, code in _TYPE_CODES.items()}


def unsupported(what: str, why: str) -> TritonModelException:
    """The error for a part of the pb_utils API asyncinfer does not honour, naming it."""
    return TritonModelException(f"pb_utils {what} is not supported by asyncinfer: {why}")


class TritonError(Exception):
    """An error a model reports for one request (``InferenceResponse(error=...)``), with a
    Triton error code; the client sees the code's gRPC status and the message."""

    UNKNOWN = 0
    INTERNAL = 1
    NOT_FOUND = 2
    INVALID_ARG = 3
    UNAVAILABLE = 4
    UNSUPPORTED = 5
    ALREADY_EXISTS = 6
    CANCELLED = 7

    _STATUS: Mapping[int, type[RpcError]] = {
        UNKNOWN: Unknown,
        INTERNAL: Internal,
        NOT_FOUND: NotFound,
        INVALID_ARG: InvalidArgument,
        UNAVAILABLE: Unavailable,
        UNSUPPORTED: Unimplemented,
        ALREADY_EXISTS: AlreadyExists,
        CANCELLED: Cancelled,
    }

    def __init__(self, message: str, code: int = INTERNAL) -> None:
        if code not in self._STATUS:
            raise ValueError(f"TritonError code must be one of {sorted(self._STATUS)}, not {code}")
        super().__init__(message)
        self._message = message
        self._code = code

    def message(self) -> str:
        return self._message

    def code(self) -> int:
        return self._code

    def status(self) -> type[RpcError]:
        """The RpcError class this code maps to (asyncinfer's one status table)."""
        return self._STATUS[self._code]

    @classmethod
    def of_rpc_error(cls, error: RpcError) -> TritonError:
        """The TritonError of an RpcError a called model failed with (BLS)."""
        for code, status in cls._STATUS.items():
            if type(error) is status:
                return cls(error.message, code)
        for code, status in cls._STATUS.items():
            if isinstance(error, status):
                return cls(error.message, code)
        return cls(error.message)


class TritonModelException(Exception):
    """Raised by pb_utils calls that fail (BLS to a model that is not ready, a closed sender);
    raised by a model's execute, it fails the requests of that call."""

    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class Tensor:
    """A named array: an input a request carries or an output a model answers with."""

    __slots__ = ("_array", "_name")

    def __init__(self, name: str, array: npt.ArrayLike) -> None:
        if not isinstance(name, str):
            raise TritonModelException(f"Tensor name must be a str, not {type(name).__name__}")
        self._name = name
        self._array = array if isinstance(array, np.ndarray) else np.asarray(array)

    @classmethod
    def _of(cls, name: str, array: npt.NDArray[Any]) -> Tensor:
        """A Tensor over an array the server already holds under a str name (a request's
        input, a BLS answer's output): nothing to check or convert."""
        self = cls.__new__(cls)
        self._name = name
        self._array = array
        return self

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> npt.NDArray[Any]:
        return self._array

    def is_cpu(self) -> bool:
        return True

    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._array.shape)

    def triton_dtype(self) -> int:
        return numpy_to_triton_type(self._array.dtype)

    def to_dlpack(self) -> Any:
        """A DLPack capsule over the array (CPU); BYTES tensors have none."""
        if self._array.dtype.kind in "OSU":
            raise TritonModelException(
                f"tensor '{self._name}' holds BYTES, which DLPack cannot carry"
            )
        return self._array.__dlpack__()

    @staticmethod
    def from_dlpack(name: str, capsule: Any) -> Tensor:
        """A Tensor over a CPU DLPack object (an object with ``__dlpack__``); a device other
        than the CPU raises."""
        if not hasattr(capsule, "__dlpack__"):
            raise unsupported(
                "Tensor.from_dlpack of a bare PyCapsule",
                "pass the producing object (it has __dlpack__), e.g. a torch tensor",
            )
        try:
            return Tensor(name, np.from_dlpack(capsule))
        except (RuntimeError, BufferError, TypeError) as exc:
            raise TritonModelException(
                f"Tensor.from_dlpack('{name}'): asyncinfer runs on the CPU and takes only CPU "
                f"DLPack tensors ({exc})"
            ) from None

    def to_model(self) -> python_model.Tensor:
        """asyncinfer's Tensor of this one (str/bytes arrays become BYTES object arrays)."""
        array = self._array
        if array.dtype.kind not in "SU":  # already what a response carries (as_array's rule)
            return python_model.Tensor(self._name, array)
        return python_model.Tensor(self._name, as_array(array))

    def __repr__(self) -> str:
        return f"Tensor({self._name!r}, shape={self._array.shape}, dtype={self._array.dtype})"


def get_input_tensor_by_name(inference_request: Any, name: str) -> Tensor | None:
    """The input called ``name`` of a request, or None."""
    return _by_name(inference_request.inputs(), name)


def get_output_tensor_by_name(inference_response: Any, name: str) -> Tensor | None:
    """The output called ``name`` of a response, or None."""
    return _by_name(inference_response.output_tensors(), name)


def _by_name(tensors: Iterable[Tensor], name: str) -> Tensor | None:
    for tensor in tensors:
        if tensor.name() == name:
            return tensor
    return None


def get_input_config_by_name(model_config: Mapping[str, Any], name: str) -> Any:
    """The config (dict) of input ``name`` in ``json.loads(args["model_config"])``, or None."""
    return _config_by_name(model_config, "input", name)


def get_output_config_by_name(model_config: Mapping[str, Any], name: str) -> Any:
    """The config (dict) of output ``name`` in ``json.loads(args["model_config"])``, or None."""
    return _config_by_name(model_config, "output", name)


def _config_by_name(model_config: Mapping[str, Any], kind: str, name: str) -> Any:
    for entry in model_config.get(kind, ()):
        if entry.get("name") == name:
            return entry
    return None


def triton_string_to_numpy(triton_type_string: str) -> type[Any]:
    """The numpy type of a config data type ("TYPE_FP32") or wire name ("FP32")."""
    found = from_config(triton_type_string) or from_wire(triton_type_string)
    if found is None:
        raise TritonModelException(f"unknown Triton data type '{triton_type_string}'")
    return found.dtype.type


def numpy_to_triton_type(data_type: Any) -> int:
    """The TRITONSERVER_TYPE_* code of a numpy dtype (object, bytes and str: BYTES)."""
    found = from_numpy(np.dtype(data_type))
    return 0 if found is None else _TYPE_CODES[found.wire]


def triton_to_numpy_type(data_type: int) -> type[Any]:
    """The numpy type of a TRITONSERVER_TYPE_* code."""
    wire = _WIRE_BY_CODE.get(data_type)
    if wire is None:
        raise TritonModelException(f"unknown TRITONSERVER data type code {data_type}")
    return DATATYPES[wire].dtype.type


def serialize_byte_tensor(input_tensor: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """BYTES elements as Triton's length-prefixed bytes, in a uint8 array."""
    return np.frombuffer(serialize_bytes(as_array(input_tensor)), dtype=np.uint8)


def deserialize_bytes_tensor(encoded_tensor: Any) -> npt.NDArray[Any]:
    """Triton's length-prefixed bytes back to an object array of bytes (flat)."""
    buffer = np.ascontiguousarray(encoded_tensor, dtype=np.uint8).tobytes()
    count, offset = 0, 0
    while offset + 4 <= len(buffer):  # count the elements; deserialize_bytes checks them
        offset += 4 + int.from_bytes(buffer[offset : offset + 4], "little")
        count += 1
    return deserialize_bytes(buffer, count, what="serialized BYTES tensor")


class LogLevel:
    INFO = logging.INFO
    WARNING = logging.WARNING
    ERROR = logging.ERROR
    VERBOSE = logging.DEBUG


_model_log = logging.getLogger("asyncinfer.models")


class Logger:
    """pb_utils.Logger: messages go to the ``asyncinfer.models`` logger (VERBOSE is DEBUG)."""

    @staticmethod
    def log(message: str, level: int = LogLevel.INFO) -> None:
        _model_log.log(level, "%s", message)

    @staticmethod
    def log_info(message: str) -> None:
        _model_log.info("%s", message)

    @staticmethod
    def log_warn(message: str) -> None:
        _model_log.warning("%s", message)

    @staticmethod
    def log_error(message: str) -> None:
        _model_log.error("%s", message)

    @staticmethod
    def log_verbose(message: str) -> None:
        _model_log.debug("%s", message)
