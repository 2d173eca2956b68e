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
from .pb_types import *  # noqa: F403 (Triton's constants and helpers, listed in pb_types)
from .pb_types import __all__ as _types

__all__ = [
    "InferenceRequest",
    "InferenceResponse",
    "InferenceResponseSender",
    "Metric",
    "MetricFamily",
    "ModelConfig",
    "is_model_ready",
    "load_model",
    "unload_model",
    *_types,
]

MODULE_NAME = "triton_python_backend_utils"
