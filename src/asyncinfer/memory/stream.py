"""CUDA streams (non-blocking, with async copies), and whether CUDA can be used here.

The runtime itself is loaded by the one CUDA loader, :mod:`asyncinfer._cudart`.
"""

from __future__ import annotations

from typing import Any

from .._cudart import check, runtime, unavailable_reason

__all__ = ["Stream", "cuda_available"]


def cuda_available() -> str | None:
    """None when CUDA can be used here, else the reason it cannot (for skips and fallbacks)."""
    reason = unavailable_reason()
    return f"CUDA is not available: {reason}" if reason else None


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
