"""The Triton-compatible inference service: one data plane, thin front ends over it.

::

    server = build_server("examples/model_repository", grpc_port=8001)

The layout is the architecture:

- ``model.py``: the data plane. A ``LoadedModel`` runs one model version end to end: an
  ``InferRequest`` (infer_types.py) in, ``InferResponse``\\ s out; inputs checked and read
  (inputs.py, with the one validator of ``asyncinfer.signature``), scheduling, outputs checked,
  classified or placed in shared memory (outputs.py), statistics (statistics.py), deadlines and
  cancellation. ``python_model.py`` is the API a model.py is written against.
- Front ends only translate: ``rpc/`` (gRPC Contexts: control, inference, shared memory,
  settings), whose protobuf codecs are ``wire/``; ``http/`` (the KServe v2 REST front end and
  its JSON/binary codec); ``inprocess.py`` (calls from models and Contexts); ensemble steps and
  warmup (``repository/``). ``control_calls.py`` is what gRPC's and HTTP's control calls share.
- ``repository/``: which models exist and how each loads; ``scheduling/``: how requests reach a
  backend (direct, dynamic batcher, sequences); ``backends/``: what runs them (python thread or
  process instances, ONNX Runtime and TensorRT engines, ensembles).
- ``service.py``: the state every front end shares (repository, shared memory, settings);
  ``app.py``: the server factory.
"""

from __future__ import annotations

from .app import build_server
from .infer_types import (
    Cancellation,
    ElementValues,
    InferInput,
    InferRequest,
    InferResponse,
    OutputTensor,
    RequestedOutput,
)
from .inprocess import ModelCaller, ModelLookup
from .model import LoadedModel
from .python_model import ModelError, Request, Response, ResponseSender, Tensor
from .repository import ControlMode, ModelRepository
from .rpc import CONTEXTS
from .server_settings import LogSettings, TraceSettings
from .service import SERVER_NAME, InferenceResources
from .shared_memory import RequestShm, SharedMemory, ShmSpan, shm_span
from .statistics import ModelStats, RequestTiming

__all__ = [
    "CONTEXTS",
    "SERVER_NAME",
    "Cancellation",
    "ControlMode",
    "ElementValues",
    "InferInput",
    "InferRequest",
    "InferResponse",
    "InferenceResources",
    "LoadedModel",
    "LogSettings",
    "ModelCaller",
    "ModelError",
    "ModelLookup",
    "ModelRepository",
    "ModelStats",
    "OutputTensor",
    "Request",
    "RequestShm",
    "RequestTiming",
    "RequestedOutput",
    "Response",
    "ResponseSender",
    "SharedMemory",
    "ShmSpan",
    "Tensor",
    "TraceSettings",
    "build_server",
    "shm_span",
]
