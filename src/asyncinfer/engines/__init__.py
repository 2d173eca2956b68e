"""Engines: one Engine protocol, three backends (Python callables, ONNX Runtime, TensorRT).

Backends import their runtime lazily, so ``import asyncinfer.engines`` works everywhere and a
missing runtime is a ConfigError when an engine of that kind starts.
"""

from __future__ import annotations

from ._limiter import ComputeToken, Limiter, compute_tokens
from .base import Arrays, Engine, binding, check_inputs
from .callables import PythonEngine
from .onnxruntime import OnnxEngine
from .tensorrt import TensorRTEngine, tensorrt_available

__all__ = [
    "Arrays",
    "ComputeToken",
    "Engine",
    "Limiter",
    "OnnxEngine",
    "PythonEngine",
    "TensorRTEngine",
    "binding",
    "check_inputs",
    "compute_tokens",
    "tensorrt_available",
]
