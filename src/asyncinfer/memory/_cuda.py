"""The CUDA runtime through cuda-python, imported lazily: one place that says what is missing.

Every CUDA call in asyncinfer goes through :func:`runtime` and :func:`check`, so a machine
without cuda-python or without a GPU gets one clear ``ConfigError`` where CUDA is first needed,
and code that never touches CUDA never imports it.
"""

from __future__ import annotations

import functools
from typing import Any

from ..errors import ConfigError

__all__ = ["Stream", "check", "cuda_available", "runtime"]


@functools.cache
def _load() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[no-redef, unused-ignore]  # older cuda-python
        except ImportError:
            return None
    return cudart


def runtime() -> Any:
    """The cuda-python runtime module (``cudart``), or ConfigError saying what is missing."""
    cudart = _load()
    if cudart is None:
        raise ConfigError(
            "CUDA is not available: cuda-python is not installed "
            "(pip install 'asyncinfer[gpu]'); pinned and device memory need it"
        )
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or count == 0:
        raise ConfigError(f"CUDA is not available: no CUDA device ({_name(cudart, err)})")
    return cudart


def cuda_available() -> str | None:
    """None when CUDA can be used here, else the reason it cannot (for skips and fallbacks)."""
    try:
        runtime()
    except ConfigError as exc:
        return str(exc)
    return None


def check(result: tuple[Any, ...], what: str) -> Any:
    """Unpack a cuda-python result tuple ``(err, *values)``; raise on an error code."""
    cudart = _load()
    err, *values = result
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"{what} failed: {_name(cudart, err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _name(cudart: Any, err: Any) -> str:
    try:
        _, text = cudart.cudaGetErrorString(err)
        return f"{err!r}: {text.decode() if isinstance(text, bytes) else text}"
    except Exception:  # the error string is only decoration
        return repr(err)


class Stream:
    """A non-blocking CUDA stream; ``handle`` is the integer TensorRT and CuPy accept."""

    def __init__(self) -> None:
        cudart = runtime()
        self._cudart = cudart
        self._stream: Any = check(
            cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking), "cudaStreamCreate"
        )

    @property
    def raw(self) -> Any:
        return self._stream

    @property
    def handle(self) -> int:
        return int(self._stream)

    def synchronize(self) -> None:
        check(self._cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def copy(self, dst: int, src: int, nbytes: int, kind: str) -> None:
        """Enqueue an async copy; ``kind`` is "h2d", "d2h" or "d2d"."""
        kinds = self._cudart.cudaMemcpyKind
        code = {
            "h2d": kinds.cudaMemcpyHostToDevice,
            "d2h": kinds.cudaMemcpyDeviceToHost,
            "d2d": kinds.cudaMemcpyDeviceToDevice,
        }[kind]
        check(self._cudart.cudaMemcpyAsync(dst, src, nbytes, code, self._stream), "cudaMemcpyAsync")

    def close(self) -> None:
        if self._stream is not None:
            check(self._cudart.cudaStreamDestroy(self._stream), "cudaStreamDestroy")
            self._stream = None
