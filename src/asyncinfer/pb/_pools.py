"""The private descriptor pool that holds the inference protocol's messages.

tritonclient registers ``grpc_service.proto`` and ``model_config.proto`` (package ``inference``)
in protobuf's default pool. Our generated modules for the same package register here instead
(setup.py rewrites them at build time), so a process may import both without a
"duplicate symbol" error. Messages are wire-compatible either way: only the Python classes differ.
"""

from __future__ import annotations

from google.protobuf import descriptor_pool

__all__ = ["INFERENCE_POOL"]

INFERENCE_POOL = descriptor_pool.DescriptorPool()
