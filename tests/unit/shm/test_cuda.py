"""The CUDA shared-memory registry and pinned staging: clear errors without CUDA, IPC with it."""

from __future__ import annotations

import mmap
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from asyncinfer.errors import FailedPrecondition, InvalidArgument
from asyncinfer.shm.cuda import CudaShmRegistry, cuda_unavailable_reason, pin_host_memory

NO_CUDA = cuda_unavailable_reason()
needs_cuda = pytest.mark.skipif(bool(NO_CUDA), reason=f"CUDA is not available: {NO_CUDA}")


@pytest.mark.skipif(not NO_CUDA, reason="CUDA is available here; this checks its absence")
def test_without_cuda_register_fails_clearly_and_unregister_all_succeeds() -> None:
    registry = CudaShmRegistry()
    registry.unregister("")
    registry.unregister("never_registered")
    assert registry.status() == []
    with pytest.raises(FailedPrecondition, match=re.escape(f"CUDA is not available: {NO_CUDA}")):
        registry.register("r", bytes(64), 0, 1024)
    with pytest.raises(FailedPrecondition, match="CUDA is not available"):
        pin_host_memory(memoryview(mmap.mmap(-1, 4096)))
    assert registry.status() == []


def test_malformed_registration_is_invalid_everywhere() -> None:
    with pytest.raises(InvalidArgument, match="expected a 64-byte cudaIpcMemHandle_t"):
        CudaShmRegistry().register("r", b"short", 0, 1024)


_EXPORTER = textwrap.dedent(
    """
    import sys, numpy as np
    from cuda.bindings import runtime as rt
    rt.cudaSetDevice(0)
    err, ptr = rt.cudaMalloc(64)
    data = np.arange(16, dtype=np.float32)
    rt.cudaMemcpy(ptr, data.ctypes.data, 64, rt.cudaMemcpyKind.cudaMemcpyHostToDevice)
    err, handle = rt.cudaIpcGetMemHandle(ptr)
    print(bytes(handle.reserved).hex(), flush=True)
    sys.stdin.readline()  # the parent wrote through the handle
    out = np.empty(16, np.float32)
    rt.cudaMemcpy(out.ctypes.data, ptr, 64, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost)
    print(out.tolist(), flush=True)
    """
)


@needs_cuda
def test_ipc_region_from_another_process() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _EXPORTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        raw = bytes.fromhex(child.stdout.readline().strip())
        registry = CudaShmRegistry()
        registry.register("gpu", raw, 0, 64)
        with registry.lease("gpu", 0, 64) as lease:
            np.testing.assert_array_equal(lease.read(np.float32, (16,)), np.arange(16))
            lease.write(np.full(16, 3, np.float32))
        registry.unregister("")
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == str([3.0] * 16)
    finally:
        child.kill()
        child.wait(10)


@needs_cuda
def test_pinning_a_host_region() -> None:
    region = mmap.mmap(-1, 1 << 20)
    with pin_host_memory(memoryview(region)) as pinned:
        assert pinned.pinned
    assert not pinned.pinned
