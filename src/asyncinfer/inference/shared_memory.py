"""Shared memory for the inference service: the registries, and each request's leases on them.

:class:`SharedMemory` holds the system (POSIX) and CUDA region registries of one server and
whether clients may register regions at all (``allow_client_shm``). Each inference request that
names a region gets a :class:`RequestShm` scope: every input it reads and every output it writes
holds a lease on its region until the scope closes, after the reply is framed, so an unregister
in the meantime cannot unmap memory under a running model.

The protocol, gRPC and HTTP alike: an input or a requested output refers to a region with the
parameters ``shared_memory_region`` (string), ``shared_memory_byte_size`` (int64) and optionally
``shared_memory_offset`` (int64, default 0), read by :func:`shm_span` from plain values. The data
plane reads such inputs and writes such outputs through the request's scope; a front end then
sends an output written to shared memory with its datatype and shape and no data.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InvalidArgument, Unimplemented
from ..shm.cuda import (
    CudaRegionLease,
    CudaRegionStatus,
    CudaShmRegistry,
    cuda_unavailable_reason,
)
from ..shm.posix import RegionLease, RegionStatus, SystemShmRegistry

__all__ = ["DISABLED", "RequestShm", "SharedMemory", "ShmSpan", "shm_span"]

Array = npt.NDArray[Any]


@dataclasses.dataclass(frozen=True, slots=True)
class ShmSpan:
    """Where a tensor lies: ``[offset, offset + byte_size)`` of registered region ``region``."""

    region: str
    offset: int
    byte_size: int

    def overlaps(self, other: ShmSpan) -> bool:
        return (
            self.region == other.region
            and self.byte_size > 0  # an empty span holds no byte, so it overlaps nothing
            and other.byte_size > 0
            and self.offset < other.offset + other.byte_size
            and other.offset < self.offset + self.byte_size
        )


def _int_parameter(parameters: Mapping[str, Any], key: str, what: str) -> int:
    value = parameters[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{what}: parameter '{key}' must be an integer")
    return value


def shm_span(parameters: Mapping[str, Any], what: str) -> ShmSpan | None:
    """The span a tensor's parameters name, or None when it does not use shared memory.

    ``parameters`` are plain values (a front end decodes its wire's parameters first), so the
    gRPC and HTTP front ends read the same three parameters the same way.
    """
    if "shared_memory_region" not in parameters:
        for key in ("shared_memory_byte_size", "shared_memory_offset"):
            if key in parameters:
                raise InvalidArgument(f"{what}: '{key}' is set but 'shared_memory_region' is not")
        return None
    region = parameters["shared_memory_region"]
    if not isinstance(region, str):
        raise InvalidArgument(f"{what}: parameter 'shared_memory_region' must be a string")
    if "shared_memory_byte_size" not in parameters:
        raise InvalidArgument(
            f"{what}: 'shared_memory_byte_size' must be given with shared memory region '{region}'"
        )
    size = _int_parameter(parameters, "shared_memory_byte_size", what)
    offset = (
        _int_parameter(parameters, "shared_memory_offset", what)
        if "shared_memory_offset" in parameters
        else 0
    )
    return ShmSpan(region, offset, size)


#: Triton's answer to register and unregister when clients may not use shared memory.
DISABLED = (
    "Client shared memory is disabled. Start the server with '--allow-client-shm=true' to enable."
)


class SharedMemory:
    """The server's region registries and the switch that lets clients use them.

    Every front end (gRPC, HTTP) registers, unregisters and lists regions through here. With
    ``allow_client_shm`` off (the default, as Triton's), register and unregister, named or all,
    system and CUDA, are refused with Triton's UNIMPLEMENTED text, and status lists nothing.
    """

    def __init__(self, *, allow_client_shm: bool) -> None:
        self.allow_client_shm = allow_client_shm
        self.system = SystemShmRegistry()
        self.cuda = CudaShmRegistry()

    def _require_allowed(self) -> None:
        if not self.allow_client_shm:
            raise Unimplemented(DISABLED)

    def register_system(self, name: str, key: str, offset: int, byte_size: int) -> None:
        self._require_allowed()
        self.system.register(name, key, offset, byte_size)

    def unregister_system(self, name: str = "") -> None:
        """Unregister ``name``, or every system region when it is empty."""
        self._require_allowed()
        self.system.unregister(name)

    def system_status(self, name: str = "") -> list[RegionStatus]:
        return self.system.status(name) if self.allow_client_shm else []

    def register_cuda(self, name: str, raw_handle: bytes, device_id: int, byte_size: int) -> None:
        self._require_allowed()
        self.cuda.register(name, raw_handle, device_id, byte_size)

    def unregister_cuda(self, name: str = "") -> None:
        """Unregister ``name``, or every CUDA region when it is empty (CUDA or not)."""
        self._require_allowed()
        self.cuda.unregister(name)

    def cuda_status(self, name: str = "") -> list[CudaRegionStatus]:
        return self.cuda.status(name) if self.allow_client_shm else []

    def extensions(self) -> tuple[str, ...]:
        """The shared-memory extensions that work on this server, for ServerMetadata."""
        if not self.allow_client_shm:
            return ()
        if cuda_unavailable_reason():
            return ("system_shared_memory",)
        return ("cuda_shared_memory", "system_shared_memory")

    def scope(self) -> RequestShm:
        return RequestShm(self)

    def close(self) -> None:
        self.system.close()
        self.cuda.close()


class RequestShm:
    """The leases one request holds; ``close`` (or ``with``) returns them all."""

    def __init__(self, shared: SharedMemory) -> None:
        self._shared = shared
        self._leases: list[RegionLease | CudaRegionLease] = []

    def lease(self, span: ShmSpan) -> RegionLease | CudaRegionLease:
        """A lease on ``span``, checked against its region (Triton's texts), held until the
        scope closes."""
        registry: SystemShmRegistry | CudaShmRegistry = self._shared.system
        if span.region not in registry and span.region in self._shared.cuda:
            registry = self._shared.cuda
        lease = registry.lease(span.region, span.offset, span.byte_size)
        self._leases.append(lease)
        return lease

    def read(self, lease: RegionLease | CudaRegionLease) -> memoryview:
        """The leased bytes, copied into server memory (never a view of the client's)."""
        if isinstance(lease, CudaRegionLease):
            return lease.read(np.uint8, (lease.byte_size,)).data
        return lease.view()

    def write_output(self, span: ShmSpan, data: bytes | memoryview, what: str) -> None:
        """Write an output's serialized bytes to the start of its span."""
        nbytes = memoryview(data).nbytes
        if nbytes > span.byte_size:
            raise InvalidArgument(
                f"{what}: shared memory size specified with the request ({span.byte_size} "
                f"bytes in region '{span.region}') should be at least {nbytes} bytes to hold "
                "the results"
            )
        lease = self.lease(span)
        if isinstance(lease, CudaRegionLease):
            lease.write(np.frombuffer(data, np.uint8))
        else:
            lease.write(data)

    def close(self) -> None:
        if not self._leases:  # the usual request: no shared memory
            return
        leases, self._leases = self._leases, []
        for lease in leases:
            lease.release()

    def __enter__(self) -> RequestShm:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if tb is not None:
            # The leaving exception's traceback holds the frames it passed through; their
            # locals may hold numpy views of the leased regions, which would keep a region
            # unregistered meanwhile from unmapping. Clear those finished frames' locals first
            # (the traceback text stays), as pools._Acquire.__aexit__ does.
            traceback.clear_frames(tb)
        if self._leases:  # none, for the usual request
            self.close()
