"""Memory: allocators, memory stacks (alignment, overflow, reset vs live views), stack pools."""

from __future__ import annotations

import asyncio
import gc
import mmap

import numpy as np
import pytest

from asyncinfer.errors import ConfigError, ResourceExhausted, Unavailable, UsageError
from asyncinfer.memory import (
    Allocation,
    DeviceAllocator,
    HostAllocator,
    MemoryStack,
    PinnedAllocator,
    StackPool,
    StackSet,
    Stream,
    cuda_available,
)

NO_CUDA = cuda_available()
needs_cuda = pytest.mark.skipif(NO_CUDA is not None, reason=f"needs a GPU: {NO_CUDA}")


def host_stack(nbytes: int = 1 << 16, **kwargs: object) -> MemoryStack:
    return MemoryStack(HostAllocator().allocate(nbytes), name="test", **kwargs)  # type: ignore[arg-type]


def test_host_allocations_are_page_aligned_and_free_once() -> None:
    block = HostAllocator().allocate(10_000)
    assert block.address % mmap.PAGESIZE == 0 and block.nbytes == 10_000
    block.free()
    with pytest.raises(UsageError, match="freed twice"):
        block.free()
    with pytest.raises(ConfigError, match="positive int"):
        HostAllocator().allocate(0)


def test_stack_allocations_are_aligned_and_bump() -> None:
    stack = host_stack(alignment=256)
    a = stack.allocate(10)
    b = stack.allocate(10)
    c = stack.allocate(10, alignment=4096)
    assert a.address % 256 == 0 and b.address % 256 == 0 and c.address % 4096 == 0
    assert b.offset == 256 and stack.used == c.offset + 10


def test_arrays_are_views_into_the_stack() -> None:
    stack = host_stack()
    x = stack.array((4, 8), np.float32)
    x[:] = 3
    assert x.shape == (4, 8) and x.dtype == np.float32 and x.flags.c_contiguous
    assert stack.owns(x) and stack.owns(x[1:]) and not stack.owns(np.zeros(3))
    raw = np.asarray(stack.allocate(0))  # zero-size regions are legal
    assert raw.nbytes == 0


def test_high_water_is_the_most_ever_used_across_resets() -> None:
    stack = host_stack(alignment=64)
    assert stack.statistics()["high_water"] == 0
    x = stack.array((256,), np.float32)
    assert stack.statistics()["high_water"] == 1024  # before any reset, while in use
    del x
    stack.reset()
    y = stack.array((16,), "int64")
    assert stack.statistics()["high_water"] == 1024 and stack.statistics()["used"] == 128
    del y
    stack.reset()
    z = stack.array((1024,), np.uint8)
    w = stack.array((100,), np.uint8)
    assert stack.statistics()["high_water"] == 1024 + 100
    del z, w
    stack.reset()
    assert stack.statistics()["high_water"] == 1124 and stack.statistics()["resets"] == 3


def test_overflow_names_the_sizes() -> None:
    stack = host_stack(4096)
    stack.allocate(4000)
    with pytest.raises(
        ResourceExhausted, match=r"cannot allocate 512 bytes .* 96 of 4096 bytes left"
    ):
        stack.allocate(512)


def test_reset_refused_while_any_view_is_alive() -> None:
    stack = host_stack()
    x = stack.array((16,), np.int32)
    tail = x[8:]  # a view of a view keeps the region alive too
    del x
    gc.collect()
    with pytest.raises(UsageError, match="cannot reset: 1 view"):
        stack.reset()
    del tail
    stack.reset()
    assert stack.used == 0 and stack.live_views() == 0


def test_dlpack_export_shares_memory_and_pins_the_region() -> None:
    stack = host_stack()
    x = stack.array((2, 3), np.float64)
    x[:] = np.arange(6).reshape(2, 3)
    y = np.from_dlpack(x)
    assert np.shares_memory(x, y) and y.tolist() == x.tolist()
    del x
    with pytest.raises(UsageError, match="view"):
        stack.reset()
    del y
    stack.reset()


def test_copy_in_makes_a_contiguous_copy() -> None:
    stack = host_stack()
    source = np.arange(20, dtype=np.int64).reshape(4, 5)[:, ::2]
    copy = stack.copy_in(source)
    assert copy.flags.c_contiguous and (copy == source).all() and stack.owns(copy)


def test_device_regions_have_no_host_view() -> None:
    # An Allocation of kind "device" at a made-up address: nothing dereferences it.
    stack = MemoryStack(Allocation("device", 1 << 20, 4096), name="dev")
    region = stack.allocate(64)
    assert region.__cuda_array_interface__["data"] == (region.address, False)
    with pytest.raises(UsageError, match="holds device memory"):
        stack.array((4,), np.float32)
    with pytest.raises(AttributeError):
        _ = region.__array_interface__


def test_closed_stack_refuses_allocations() -> None:
    stack = host_stack()
    stack.close()
    with pytest.raises(UsageError, match="closed"):
        stack.allocate(1)


@pytest.mark.skipif(NO_CUDA is None, reason="CUDA is available here; this checks the error path")
def test_without_cuda_pinned_and_device_memory_say_what_is_missing() -> None:
    for allocator in (PinnedAllocator(), DeviceAllocator()):
        with pytest.raises(ConfigError, match="CUDA is not available"):
            allocator.allocate(1024)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        StackPool(count=1, host_bytes=4096, device_bytes=4096).open()


async def test_stack_pool_resets_on_return() -> None:
    pool = StackPool(count=2, host_bytes=1 << 16, name="req")
    pool.open()
    async with pool.acquire() as lease:
        x = lease.item.host.array((100,), np.float32)
        assert lease.item.device is None and lease.item.stream is None
        del x
    async with pool.acquire() as lease:
        assert lease.item.host.used == 0
    assert pool.statistics()["idle"] == 2
    pool.close()


async def test_view_kept_past_the_lease_is_refused_and_nothing_stays_borrowed() -> None:
    pool = StackPool(count=1, host_bytes=1 << 16, name="keeper")
    pool.open()
    with pytest.raises(UsageError, match=r"memory stack 'keeper\[0\].host' cannot reset"):
        async with pool.acquire() as lease:
            kept = lease.item.host.array((10,), np.float32)
    stats = pool.statistics()
    assert (stats["retired"], stats["size"], stats["leased"], stats["idle"]) == (1, 1, 0, 1)
    kept[:] = 1  # still valid memory: the retired set is never lent again
    async with pool.acquire() as lease:
        assert not lease.item.host.owns(kept)
    pool.close()


async def test_stack_pool_needs_open_and_frees_leased_sets_on_return_after_close() -> None:
    pool = StackPool(count=2, host_bytes=4096, name="life")
    with pytest.raises(UsageError, match="not open"):
        pool.acquire()
    pool.open()
    lease = await pool.acquire()
    held = lease.item
    pool.close()  # a lease is out: no error, new leases refused, the idle set freed now
    assert pool.statistics()["closed"]
    with pytest.raises(Unavailable, match="closed"):
        await pool.acquire()
    assert not held.host.allocation.freed
    lease.release()
    assert held.host.allocation.freed  # freed on its return


async def test_stack_pool_aclose_waits_for_the_leases_out() -> None:
    pool = StackPool(count=1, host_bytes=4096, name="drain")
    pool.open()
    lease = await pool.acquire()
    held = lease.item
    closing = asyncio.create_task(pool.aclose())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not closing.done()
    with pytest.raises(Unavailable):
        await pool.acquire()  # refused while draining
    lease.release()
    await asyncio.wait_for(closing, 10)
    assert held.host.allocation.freed


async def test_stack_pool_open_frees_what_it_made_when_a_later_set_fails() -> None:
    made: list[StackSet] = []

    class FailsOnSecond(StackPool):
        def _make(self, index: int) -> StackSet:
            if index == 1:
                raise MemoryError("no memory for the second set")
            made.append(super()._make(index))
            return made[-1]

    pool = FailsOnSecond(count=3, host_bytes=4096, name="partial")
    with pytest.raises(MemoryError):
        pool.open()
    assert len(made) == 1 and made[0].host.allocation.freed


@needs_cuda
async def test_pinned_and_device_stacks_round_trip_on_the_stream() -> None:
    pool = StackPool(count=2, host_bytes=1 << 20, device_bytes=1 << 20, name="gpu")
    pool.open()
    async with pool.acquire() as lease:
        memory = lease.item
        assert memory.host.allocation.kind == "pinned" and memory.stream is not None
        assert memory.device is not None
        source = memory.host.array((1024,), np.float32)
        source[:] = np.arange(1024)
        target = memory.host.array((1024,), np.float32)
        region = memory.device.allocate(source.nbytes)
        memory.stream.copy(region.address, source.ctypes.data, source.nbytes, "h2d")
        memory.stream.copy(target.ctypes.data, region.address, source.nbytes, "d2h")
        memory.stream.synchronize()
        assert (target == source).all()
        del source, target, region
    pool.close()


@needs_cuda
def test_stream_ordered_device_allocation() -> None:
    stream = Stream()
    block = DeviceAllocator(stream).allocate(1 << 20)
    assert block.address != 0
    block.free()
    stream.synchronize()
    stream.close()


def test_host_arrays_are_counted_through_the_blocks_byte_array() -> None:
    stack = host_stack()
    x = stack.array((4, 4), np.int32)
    y = stack.array((8,), np.float64)
    assert stack.live_views() == 2 and stack.owns(x) and stack.owns(y.reshape(2, 4))
    assert not np.shares_memory(x, y)
    view = x.T[1:]  # views of views count as arrays alive too
    del x, y
    gc.collect()
    assert stack.live_views() == 1
    with pytest.raises(UsageError, match="cannot reset: 1 view"):
        stack.reset()
    del view
    stack.reset()
    assert stack.live_views() == 0 and stack.used == 0
    stack.close()
    with pytest.raises(UsageError, match="was closed"):
        stack.array((1,), np.int8)


def test_inference_processes_keep_large_blocks_in_the_heap() -> None:
    import platform

    from asyncinfer.memory.host_heap import tune_host_heap

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("the host heap settings are glibc's mallopt; this C library is not glibc")
    assert tune_host_heap() is True
    assert tune_host_heap() is True  # once per process, then the cached answer


_SERVE_ONE = """
from asyncinfer import workers
from asyncinfer.memory import host_heap

def factory():
    print("tuned before the server was built:", host_heap._tuned, flush=True)
    raise SystemExit(0)

workers.run_loop(workers._serve_one(factory, 0, announce=print))
"""


def test_every_serving_process_tunes_its_heap_before_building_its_server() -> None:
    """Custom services too, not only inference servers: a process asyncinfer.serve runs (alone
    or as a worker) has the heap settings before its factory builds the server."""
    import platform
    import subprocess
    import sys

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("the host heap settings are glibc's mallopt; this C library is not glibc")
    done = subprocess.run(
        [sys.executable, "-c", _SERVE_ONE], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "tuned before the server was built: True"


@pytest.mark.parametrize("shape", [(-1,), (-1, 0), (-1, -2), (-2, -3), (2, -3)])
def test_negative_extents_are_refused_and_take_nothing(shape: tuple[int, ...]) -> None:
    stack = host_stack()
    with pytest.raises(UsageError, match="negative extent"):
        stack.array(shape, np.float32)
    assert stack.used == 0
