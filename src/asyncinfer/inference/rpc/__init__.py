"""The gRPC front end of the inference service: one Context per RPC of
``inference.GRPCInferenceService``, each a thin adapter over the service's resources and the
data plane; ``CONTEXTS`` lists them all, in the order the proto declares the RPCs' groups."""

from __future__ import annotations

from typing import Any

from ...context import Context
from ..service import InferenceResources
from .control import CONTROL_CONTEXTS
from .infer import ModelInferRpc, ModelStreamInferRpc
from .settings import SETTINGS_CONTEXTS
from .shm_regions import SHM_CONTEXTS

__all__ = ["CONTEXTS"]

CONTEXTS: tuple[type[Context[Any, Any, InferenceResources]], ...] = (
    *CONTROL_CONTEXTS,
    ModelInferRpc,
    ModelStreamInferRpc,
    *SHM_CONTEXTS,
    *SETTINGS_CONTEXTS,
)
