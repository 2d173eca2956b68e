"""``triton_python_backend_utils`` as a model.py imports it: Triton's python-backend API.

Loading a python model registers this module as ``sys.modules["triton_python_backend_utils"]``
(backends/model_module.py), so ``import triton_python_backend_utils as pb_utils`` in a model.py
resolves here whether or not Triton is installed. What it has is Triton's published API
(python_backend's README); what asyncinfer cannot honour raises TritonModelException naming it.
"""

from __future__ import annotations

from .pb_config import ModelConfig
from .pb_metrics import Metric, MetricFamily
from .pb_requests import (
    InferenceRequest,
    InferenceResponse,
    InferenceResponseSender,
    is_model_ready,
    load_model,
    unload_model,
)
from .pb_types import (
    TRITONSERVER_REQUEST_FLAG_SEQUENCE_END,
    TRITONSERVER_REQUEST_FLAG_SEQUENCE_START,
    TRITONSERVER_REQUEST_RELEASE_ALL,
    TRITONSERVER_REQUEST_RELEASE_RESCHEDULE,
    TRITONSERVER_RESPONSE_COMPLETE_FINAL,
    TRITONSERVER_TYPE_BF16,
    TRITONSERVER_TYPE_BOOL,
    TRITONSERVER_TYPE_BYTES,
    TRITONSERVER_TYPE_FP16,
    TRITONSERVER_TYPE_FP32,
    TRITONSERVER_TYPE_FP64,
    TRITONSERVER_TYPE_INT8,
    TRITONSERVER_TYPE_INT16,
    TRITONSERVER_TYPE_INT32,
    TRITONSERVER_TYPE_INT64,
    TRITONSERVER_TYPE_INVALID,
    TRITONSERVER_TYPE_UINT8,
    TRITONSERVER_TYPE_UINT16,
    TRITONSERVER_TYPE_UINT32,
    TRITONSERVER_TYPE_UINT64,
    Logger,
    LogLevel,
    Tensor,
    TritonError,
    TritonModelException,
    deserialize_bytes_tensor,
    get_input_config_by_name,
    get_input_tensor_by_name,
    get_output_config_by_name,
    get_output_tensor_by_name,
    numpy_to_triton_type,
    serialize_byte_tensor,
    triton_string_to_numpy,
    triton_to_numpy_type,
)

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
    "InferenceRequest",
    "InferenceResponse",
    "InferenceResponseSender",
    "LogLevel",
    "Logger",
    "Metric",
    "MetricFamily",
    "ModelConfig",
    "Tensor",
    "TritonError",
    "TritonModelException",
    "deserialize_bytes_tensor",
    "get_input_config_by_name",
    "get_input_tensor_by_name",
    "get_output_config_by_name",
    "get_output_tensor_by_name",
    "is_model_ready",
    "load_model",
    "numpy_to_triton_type",
    "serialize_byte_tensor",
    "triton_string_to_numpy",
    "triton_to_numpy_type",
    "unload_model",
]

MODULE_NAME = "triton_python_backend_utils"
