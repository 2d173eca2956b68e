"""The shared-memory RPCs of the inference protocol: system and CUDA register, status, unregister.

Registering is refused unless the server was started with ``allow_client_shm``
(``--allow-client-shm``): a registered region gives a client a window into server memory
mappings, so an operator turns it on deliberately. Status and unregister are always answered,
because Triton's clients unregister everything (an empty name) before they start, also against
servers without shared memory: with registration refused nothing can be registered, so both
are harmless there. Without CUDA, registering a CUDA region fails with FAILED_PRECONDITION
"CUDA is not available: ...", and CUDA unregister-all still succeeds.
"""

from __future__ import annotations

from ...context import UnaryContext, rpc_method
from ...errors import FailedPrecondition
from ...pb.inference import grpc_service_pb2 as pb
from ..service import InferenceResources
from .control import SERVICE

__all__ = ["SHM_CONTEXTS"]


def _require_allowed(resources: InferenceResources, rpc: str) -> None:
    if not resources.shm.allow_client_shm:
        raise FailedPrecondition(
            f"{rpc}: this server does not accept client shared memory; start it with "
            "--allow-client-shm (allow_client_shm=True) to register regions"
        )


class SystemSharedMemoryRegisterRpc(
    UnaryContext[
        pb.SystemSharedMemoryRegisterRequest,
        pb.SystemSharedMemoryRegisterResponse,
        InferenceResources,
    ]
):
    method = rpc_method(pb, SERVICE, "SystemSharedMemoryRegister")

    async def execute(
        self, request: pb.SystemSharedMemoryRegisterRequest
    ) -> pb.SystemSharedMemoryRegisterResponse:
        _require_allowed(self.resources, "SystemSharedMemoryRegister")
        self.resources.shm.system.register(
            request.name, request.key, request.offset, request.byte_size
        )
        return pb.SystemSharedMemoryRegisterResponse()


class SystemSharedMemoryStatusRpc(
    UnaryContext[
        pb.SystemSharedMemoryStatusRequest, pb.SystemSharedMemoryStatusResponse, InferenceResources
    ]
):
    method = rpc_method(pb, SERVICE, "SystemSharedMemoryStatus")

    async def execute(
        self, request: pb.SystemSharedMemoryStatusRequest
    ) -> pb.SystemSharedMemoryStatusResponse:
        reply = pb.SystemSharedMemoryStatusResponse()
        for region in self.resources.shm.system.status(request.name):
            reply.regions[region.name].CopyFrom(
                pb.SystemSharedMemoryStatusResponse.RegionStatus(
                    name=region.name,
                    key=region.key,
                    offset=region.offset,
                    byte_size=region.byte_size,
                )
            )
        return reply


class SystemSharedMemoryUnregisterRpc(
    UnaryContext[
        pb.SystemSharedMemoryUnregisterRequest,
        pb.SystemSharedMemoryUnregisterResponse,
        InferenceResources,
    ]
):
    method = rpc_method(pb, SERVICE, "SystemSharedMemoryUnregister")

    async def execute(
        self, request: pb.SystemSharedMemoryUnregisterRequest
    ) -> pb.SystemSharedMemoryUnregisterResponse:
        self.resources.shm.system.unregister(request.name)
        return pb.SystemSharedMemoryUnregisterResponse()


class CudaSharedMemoryRegisterRpc(
    UnaryContext[
        pb.CudaSharedMemoryRegisterRequest, pb.CudaSharedMemoryRegisterResponse, InferenceResources
    ]
):
    method = rpc_method(pb, SERVICE, "CudaSharedMemoryRegister")

    async def execute(
        self, request: pb.CudaSharedMemoryRegisterRequest
    ) -> pb.CudaSharedMemoryRegisterResponse:
        _require_allowed(self.resources, "CudaSharedMemoryRegister")
        self.resources.shm.cuda.register(
            request.name, request.raw_handle, request.device_id, request.byte_size
        )
        return pb.CudaSharedMemoryRegisterResponse()


class CudaSharedMemoryStatusRpc(
    UnaryContext[
        pb.CudaSharedMemoryStatusRequest, pb.CudaSharedMemoryStatusResponse, InferenceResources
    ]
):
    method = rpc_method(pb, SERVICE, "CudaSharedMemoryStatus")

    async def execute(
        self, request: pb.CudaSharedMemoryStatusRequest
    ) -> pb.CudaSharedMemoryStatusResponse:
        reply = pb.CudaSharedMemoryStatusResponse()
        for region in self.resources.shm.cuda.status(request.name):
            reply.regions[region.name].CopyFrom(
                pb.CudaSharedMemoryStatusResponse.RegionStatus(
                    name=region.name, device_id=region.device_id, byte_size=region.byte_size
                )
            )
        return reply


class CudaSharedMemoryUnregisterRpc(
    UnaryContext[
        pb.CudaSharedMemoryUnregisterRequest,
        pb.CudaSharedMemoryUnregisterResponse,
        InferenceResources,
    ]
):
    method = rpc_method(pb, SERVICE, "CudaSharedMemoryUnregister")

    async def execute(
        self, request: pb.CudaSharedMemoryUnregisterRequest
    ) -> pb.CudaSharedMemoryUnregisterResponse:
        self.resources.shm.cuda.unregister(request.name)
        return pb.CudaSharedMemoryUnregisterResponse()


SHM_CONTEXTS = (
    SystemSharedMemoryRegisterRpc,
    SystemSharedMemoryStatusRpc,
    SystemSharedMemoryUnregisterRpc,
    CudaSharedMemoryRegisterRpc,
    CudaSharedMemoryStatusRpc,
    CudaSharedMemoryUnregisterRpc,
)
