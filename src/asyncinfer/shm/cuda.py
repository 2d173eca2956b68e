"""The region registry of Triton's CUDA shared-memory extension, and pinned host staging.

A client exports device memory with ``cudaIpcGetMemHandle`` and registers the 64-byte handle
under a name with a device id and byte size. This registry opens the handle once on that device
(``cudaIpcOpenMemHandle``), and requests lease ``[offset, offset + byte_size)`` of it: inputs
are copied from the device to host arrays, outputs from host arrays to the device. Unregister
closes the handle, deferred until the last lease returns.

:func:`pin_host_memory` page-locks an already mapped host region (``cudaHostRegister``), so that
copies between it and the device can run asynchronously; it is undone with ``unpin``.

Everything goes through cuda-python (``pip install 'asyncinfer[gpu]'``). Where it or a GPU is
missing, registering a CUDA region and pinning fail with FAILED_PRECONDITION and a message that
starts with "CUDA is not available:" and names what is missing, while status and unregister
(unregister-all included, which Triton's clients call first) succeed: nothing can be registered.
"""

from __future__ import annotations

import ctypes
import dataclasses
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from .. import _cudart
from ..errors import AlreadyExists, FailedPrecondition, Internal, InvalidArgument, NotFound, echo
from ._lease import ReleasedOnExit
from ._spans import check_lease_span

__all__ = [
    "CudaRegionLease",
    "CudaRegionStatus",
    "CudaShmRegistry",
    "PinnedMemory",
    "cuda_unavailable_reason",
    "pin_host_memory",
]

IPC_HANDLE_BYTES = 64


def cuda_unavailable_reason() -> str:
    """Why CUDA cannot be used here, or "" when it can."""
    return _cudart.unavailable_reason()


def _runtime() -> ModuleType:
    reason = _cudart.unavailable_reason()
    if reason:
        raise FailedPrecondition(f"CUDA is not available: {reason}")
    runtime: ModuleType = _cudart.runtime()
    return runtime


def _check(result: Any, what: str) -> Any:
    """Unpack a cuda-python result tuple, turning an error code into Internal."""
    return _cudart.check(result, what, error=Internal)


@dataclasses.dataclass(frozen=True, slots=True)
class CudaRegionStatus:
    name: str
    device_id: int
    byte_size: int


class _CudaRegion:
    def __init__(self, status: CudaRegionStatus, pointer: int) -> None:
        self.status = status
        self.pointer = pointer
        self.users = 0
        self.retired = False

    def close(self) -> None:
        runtime = _runtime()
        _check(runtime.cudaSetDevice(self.status.device_id), "cudaSetDevice")
        _check(runtime.cudaIpcCloseMemHandle(self.pointer), "cudaIpcCloseMemHandle")


class CudaRegionLease(ReleasedOnExit):
    """A request's bounded access to ``[offset, offset + byte_size)`` of a CUDA region."""

    __slots__ = ("_owner", "_region", "byte_size", "offset")

    def __init__(self, owner: CudaShmRegistry, region: _CudaRegion, offset: int, size: int) -> None:
        self._owner: CudaShmRegistry | None = owner
        self._region = region
        self.offset = offset
        self.byte_size = size

    def read(self, dtype: npt.DTypeLike, shape: Sequence[int]) -> npt.NDArray[Any]:
        """Copy the leased device bytes into a new host array of ``dtype`` and ``shape``."""
        dt = np.dtype(dtype)
        expected = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if expected != self.byte_size:
            raise InvalidArgument(
                f"CUDA shared memory region '{self._region.status.name}': shared_memory_byte_size "
                f"{self.byte_size} does not match {dt.name}{list(shape)} ({expected} bytes)"
            )
        host = np.empty(shape, dt)
        self._copy(host.ctypes.data, self._device_address(), expected, "DeviceToHost")
        return host

    def write(self, data: npt.NDArray[Any]) -> int:
        """Copy ``data`` to the start of the leased device bytes; returns the byte count."""
        host = np.ascontiguousarray(data)
        if host.nbytes > self.byte_size:
            raise InvalidArgument(
                f"CUDA shared memory region '{self._region.status.name}': the output needs "
                f"{host.nbytes} bytes but shared_memory_byte_size is {self.byte_size}"
            )
        self._copy(self._device_address(), host.ctypes.data, host.nbytes, "HostToDevice")
        return host.nbytes

    def _device_address(self) -> int:
        return self._region.pointer + self.offset

    def _copy(self, dst: int, src: int, nbytes: int, direction: str) -> None:
        runtime = _runtime()
        _check(runtime.cudaSetDevice(self._region.status.device_id), "cudaSetDevice")
        kind = getattr(runtime.cudaMemcpyKind, f"cudaMemcpy{direction}")
        _check(runtime.cudaMemcpy(dst, src, nbytes, kind), f"cudaMemcpy {direction}")

    def release(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._return(self._region)


class CudaShmRegistry:
    """Registered CUDA IPC regions by name."""

    def __init__(self) -> None:
        self._regions: dict[str, _CudaRegion] = {}

    def register(self, name: str, raw_handle: bytes, device_id: int, byte_size: int) -> None:
        if not name:
            raise InvalidArgument("CUDA shared memory: a region name is required")
        if len(raw_handle) != IPC_HANDLE_BYTES or device_id < 0 or byte_size <= 0:
            raise InvalidArgument(
                f"failed to register shared memory region '{echo(name)}': invalid args "
                f"(expected a {IPC_HANDLE_BYTES}-byte cudaIpcMemHandle_t, device_id >= 0 and "
                f"byte_size > 0; got {len(raw_handle)} bytes, device {device_id}, byte_size "
                f"{byte_size})"
            )
        if name in self._regions:
            raise AlreadyExists(f"shared memory region '{echo(name)}' already in manager")
        pointer = _open_ipc_handle(raw_handle, device_id)
        self._regions[name] = _CudaRegion(CudaRegionStatus(name, device_id, byte_size), pointer)

    def unregister(self, name: str = "") -> None:
        """Unregister ``name`` or, when it is empty, everything; unknown names are fine."""
        names = list(self._regions) if not name else [name] if name in self._regions else []
        for each in names:
            region = self._regions.pop(each)
            region.retired = True
            if not region.users:
                region.close()

    def __contains__(self, name: object) -> bool:
        return name in self._regions

    def status(self, name: str = "") -> list[CudaRegionStatus]:
        if not name:
            return [region.status for region in self._regions.values()]
        if name not in self._regions:
            raise NotFound(f"Unable to find CUDA shared memory region: '{name}'")
        return [self._regions[name].status]

    def lease(self, name: str, offset: int, byte_size: int) -> CudaRegionLease:
        region = self._regions.get(name)
        if region is None:
            raise InvalidArgument(f"Unable to find shared memory region: '{name}'")
        check_lease_span(name, offset, byte_size, region.status.byte_size)
        region.users += 1
        return CudaRegionLease(self, region, offset, byte_size)

    def close(self) -> None:
        self.unregister("")

    def _return(self, region: _CudaRegion) -> None:
        region.users -= 1
        if region.retired and not region.users:
            region.close()  # unregistered while in use: the handle closes with its last user


def _open_ipc_handle(raw_handle: bytes, device_id: int) -> int:
    runtime = _runtime()
    _check(runtime.cudaSetDevice(device_id), f"cudaSetDevice({device_id})")
    handle = runtime.cudaIpcMemHandle_t()
    handle.reserved = raw_handle
    flags = runtime.cudaIpcMemLazyEnablePeerAccess
    return int(_check(runtime.cudaIpcOpenMemHandle(handle, flags), "cudaIpcOpenMemHandle"))


class PinnedMemory:
    """A host buffer page-locked with cudaHostRegister until ``unpin`` (or ``with`` exit)."""

    def __init__(self, buffer: memoryview) -> None:
        runtime = _runtime()
        self._buffer = buffer  # keeps the memory mapped while it is registered with CUDA
        c_buffer = (ctypes.c_char * buffer.nbytes).from_buffer(buffer)
        self.address = ctypes.addressof(c_buffer)
        del c_buffer
        flags = runtime.cudaHostRegisterDefault
        _check(runtime.cudaHostRegister(self.address, buffer.nbytes, flags), "cudaHostRegister")
        self.pinned = True

    def unpin(self) -> None:
        """Undo the page-lock and let go of the buffer (its owner may unmap it afterwards)."""
        if self.pinned:
            self.pinned = False
            _check(_runtime().cudaHostUnregister(self.address), "cudaHostUnregister")
            self._buffer.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.unpin()


def pin_host_memory(buffer: memoryview) -> PinnedMemory:
    """Page-lock a writable host buffer (a registered system shm region, say) for async copies."""
    if buffer.readonly:
        raise InvalidArgument("only a writable host buffer can be pinned")
    return PinnedMemory(buffer)
