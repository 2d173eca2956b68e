"""The CUDA runtime through cuda-python, loaded once and lazily: the one CUDA loader of asyncinfer.

Every CUDA call goes through :func:`runtime` (or :func:`unavailable_reason` first) and
:func:`check`, so a machine without cuda-python, without a driver or without a GPU learns what
is missing in one sentence where CUDA is first needed, and code that never touches CUDA never
imports it. Memory (pinned and device allocators, streams), the TensorRT engine, GPU affinity and
the CUDA shared-memory registry all load it from here.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

from .errors import AsyncInferError, ConfigError

__all__ = ["check", "runtime", "unavailable_reason"]


@functools.cache
def _load() -> tuple[ModuleType | None, str]:
    """(the cudart module, "") when CUDA works here, else (None, why not)."""
    try:
        # A lazy import on purpose: cuda-python is an optional extra ([gpu]).
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[no-redef, unused-ignore]  # older cuda-python
        except ImportError:
            return None, "cuda-python is not installed (pip install 'asyncinfer[gpu]')"
    try:
        err, count = cudart.cudaGetDeviceCount()
    except Exception as exc:  # the driver library itself may be missing
        return None, f"the CUDA driver could not be loaded ({exc})"
    if err != cudart.cudaError_t.cudaSuccess:
        return None, f"no CUDA device ({_name(cudart, err)})"
    if count == 0:
        return None, "no CUDA device is visible"
    return cudart, ""


def unavailable_reason() -> str:
    """Why CUDA cannot be used here, or "" when it can."""
    return _load()[1]


def runtime() -> Any:
    """The cuda-python runtime module (``cudart``); ConfigError saying what is missing if not."""
    cudart, reason = _load()
    if cudart is None:
        raise ConfigError(f"CUDA is not available: {reason}")
    return cudart


def check(
    result: Any, what: str, *, error: type[Exception] | type[AsyncInferError] = RuntimeError
) -> Any:
    """Unpack a cuda-python result ``(err, *values)``; raise ``error`` naming ``what`` on a
    failure code. No value: None; one value: it; several: a tuple of them."""
    cudart = runtime()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise error(f"{what} failed: {_name(cudart, err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _name(cudart: Any, err: Any) -> str:
    try:
        _, text = cudart.cudaGetErrorString(err)
        return f"{err!r}: {text.decode() if isinstance(text, bytes) else text}"
    except Exception:  # the error string is only decoration
        return repr(err)
