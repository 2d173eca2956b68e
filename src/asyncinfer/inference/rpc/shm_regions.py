"""The shared-memory RPCs of the inference protocol: system and CUDA register, status, unregister.

Each is a thin adapter over the server's SharedMemory (shared_memory.py), which every front end
shares. Unless the server was started with ``--allow-client-shm`` (``allow_client_shm``), a
registered region being a window into server memory that an operator opens deliberately,
register and unregister (named or all, system and CUDA) answer Triton's UNIMPLEMENTED "Client
shared memory is disabled..." and status lists no region. With it, unregister-all succeeds with
nothing registered; without CUDA, registering a CUDA region fails with FAILED_PRECONDITION
"CUDA is not available: ...", and CUDA unregister-all still succeeds.
"""

from __future__ import annotations

from ...context import UnaryContext, rpc_method
from ...pb.inference import grpc_service_pb2 as pb
from ..service import InferenceResources
from .control import SERVICE

__all__ = ["SHM_CONTEXTS"]


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
        self.resources.shm.register_system(
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
        for region in self.resources.shm.system_status(request.name):
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
        self.resources.shm.unregister_system(request.name)
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
        self.resources.shm.register_cuda(
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
        for region in self.resources.shm.cuda_status(request.name):
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
        self.resources.shm.unregister_cuda(request.name)
        return pb.CudaSharedMemoryUnregisterResponse()


SHM_CONTEXTS = (
    SystemSharedMemoryRegisterRpc,
    SystemSharedMemoryStatusRpc,
    SystemSharedMemoryUnregisterRpc,
    CudaSharedMemoryRegisterRpc,
    CudaSharedMemoryStatusRpc,
    CudaSharedMemoryUnregisterRpc,
)
