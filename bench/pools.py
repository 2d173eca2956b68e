"""Benchmark: per-request buffers from a memory stack vs fresh numpy arrays; pool lease cost.

For each request size, one "request" allocates an input and an output buffer, writes both
(first touch included: that is where fresh allocations pay for page faults) and drops them:

- numpy: ``np.empty`` twice per request;
- stack: ``stack.array`` twice per request, then ``stack.reset()``.

Pool overhead is ``async with pool.acquire()`` per call, uncontended (1 caller, 1 item) and
contended (16 callers over 4 items, FIFO). On a machine with CUDA, also H2D bandwidth of 16 MiB
from pinned (cudaHostAlloc) vs pageable memory, beside CuPy/PyTorch pinned copies when installed.

    .venv/bin/python bench/pools.py [--runs 5] [--requests 2000]

Every figure is the median of ``--runs`` runs; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from asyncinfer.memory import HostAllocator, MemoryStack, StackPool, cuda_available
from asyncinfer.pools import Pool

KiB, MiB = 1024, 1024 * 1024
SIZES = {"4KiB+1KiB": (4 * KiB, 1 * KiB), "1MiB+1MiB": (MiB, MiB), "8MiB+8MiB": (8 * MiB, 8 * MiB)}
HEADLINE = "1MiB+1MiB"


def per_request_numpy(in_bytes: int, out_bytes: int, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        x = np.empty(in_bytes // 4, np.float32)
        y = np.empty(out_bytes // 4, np.float32)
        x.fill(1.0)
        y.fill(0.0)
        del x, y
    return (time.perf_counter() - start) / n


def per_request_stack(stack: MemoryStack, in_bytes: int, out_bytes: int, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        x = stack.array((in_bytes // 4,), np.float32)
        y = stack.array((out_bytes // 4,), np.float32)
        x.fill(1.0)
        y.fill(0.0)
        del x, y
        stack.reset()
    return (time.perf_counter() - start) / n


def median_of(runs: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(runs))


def allocation(runs: int, requests: int) -> dict[str, dict[str, float]]:
    results = {}
    for label, (in_bytes, out_bytes) in SIZES.items():
        n = max(20, requests * 4 * KiB // max(in_bytes, 4 * KiB))  # fewer big requests
        stack = MemoryStack(HostAllocator().allocate(in_bytes + out_bytes + 4 * KiB), name=label)
        numpy_s = median_of(runs, functools.partial(per_request_numpy, in_bytes, out_bytes, n))
        stack_s = median_of(
            runs, functools.partial(per_request_stack, stack, in_bytes, out_bytes, n)
        )
        results[label] = {
            "numpy_us": numpy_s * 1e6,
            "stack_us": stack_s * 1e6,
            "ratio": numpy_s / stack_s,
        }
        stack.close()
    return results


async def acquire_release(acquire: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        async with acquire():
            pass
    return (time.perf_counter() - start) / n


async def contended(pool: Pool[Any], callers: int, n: int) -> float:
    async def caller() -> None:
        for _ in range(n):
            async with pool.acquire():
                await asyncio.sleep(0)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(callers):
            group.create_task(caller())
    return (time.perf_counter() - start) / (callers * n)


async def baseline_sleep0(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await asyncio.sleep(0)
    return (time.perf_counter() - start) / n


async def pool_overhead(runs: int, requests: int) -> dict[str, float]:
    single = Pool([object()], name="bench-1")
    shared = Pool([object() for _ in range(4)], name="bench-4")
    stacks = StackPool(count=4, host_bytes=64 * KiB, name="bench-stacks")
    stacks.open()
    uncontended = [await acquire_release(single.acquire, requests) for _ in range(runs)]
    stack_leases = [await acquire_release(stacks.acquire, requests) for _ in range(runs)]
    busy = [await contended(shared, 16, requests // 16) for _ in range(runs)]
    yields = [await baseline_sleep0(requests) for _ in range(runs)]
    stacks.close()
    return {
        "acquire_release_us": statistics.median(uncontended) * 1e6,
        "stack_lease_us": statistics.median(stack_leases) * 1e6,
        "contended_16_over_4_us": statistics.median(busy) * 1e6,
        "sleep0_baseline_us": statistics.median(yields) * 1e6,
    }


def h2d_bandwidth(runs: int) -> dict[str, Any]:
    reason = cuda_available()
    if reason is not None:
        return {"gpu": f"none: {reason}"}
    from asyncinfer.memory import DeviceAllocator, PinnedAllocator, Stream

    nbytes = 16 * MiB
    stream = Stream()
    device = DeviceAllocator().allocate(nbytes)
    pinned = PinnedAllocator().allocate(nbytes)
    pageable = HostAllocator().allocate(nbytes)

    def copy_gbs(source: int) -> float:
        def once() -> float:
            stream.copy(device.address, source, nbytes, "h2d")
            stream.synchronize()
            start = time.perf_counter()
            for _ in range(10):
                stream.copy(device.address, source, nbytes, "h2d")
            stream.synchronize()
            return 10 * nbytes / (time.perf_counter() - start) / 1e9

        return median_of(runs, once)

    result: dict[str, Any] = {
        "h2d_16MiB_pinned_GBps": copy_gbs(pinned.address),
        "h2d_16MiB_pageable_GBps": copy_gbs(pageable.address),
    }
    result["peer_pinned_GBps"] = _peer_pinned(runs, nbytes)
    if result["peer_pinned_GBps"]:
        peer = max(result["peer_pinned_GBps"].values())
        result["pinned_vs_peer"] = result["h2d_16MiB_pinned_GBps"] / peer
    for block in (device, pinned, pageable):
        block.free()
    stream.close()
    return result


def _peer_pinned(runs: int, nbytes: int) -> dict[str, float]:
    peers: dict[str, float] = {}
    try:
        import torch

        source = torch.empty(nbytes, dtype=torch.uint8).pin_memory()
        target = torch.empty(nbytes, dtype=torch.uint8, device="cuda")

        def torch_once() -> float:
            target.copy_(source, non_blocking=True)
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(10):
                target.copy_(source, non_blocking=True)
            torch.cuda.synchronize()
            return 10 * nbytes / (time.perf_counter() - start) / 1e9

        peers["torch"] = median_of(runs, torch_once)
    except ImportError:
        pass
    try:
        import cupy

        host = cupy.cuda.alloc_pinned_memory(nbytes)
        array = np.frombuffer(host, np.uint8, nbytes)
        gpu = cupy.empty(nbytes, np.uint8)

        def cupy_once() -> float:
            gpu.set(array)
            cupy.cuda.Device().synchronize()
            start = time.perf_counter()
            for _ in range(10):
                gpu.set(array)
            cupy.cuda.Device().synchronize()
            return 10 * nbytes / (time.perf_counter() - start) / 1e9

        peers["cupy"] = median_of(runs, cupy_once)
    except ImportError:
        pass
    return peers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=4000)
    args = parser.parse_args(argv)
    alloc = allocation(args.runs, args.requests)
    for label, row in alloc.items():
        print(
            f"alloc {label:>10}: numpy {row['numpy_us']:8.2f} us, stack {row['stack_us']:8.2f} us,"
            f" numpy/stack {row['ratio']:.2f}x"
        )
    pools = asyncio.run(pool_overhead(args.runs, args.requests))
    for key, value in pools.items():
        print(f"pool {key}: {value:.2f}")
    gpu = h2d_bandwidth(args.runs)
    print(f"gpu: {gpu}")
    print(
        json.dumps(
            {
                "stack_vs_numpy_alloc": round(alloc[HEADLINE]["ratio"], 3),
                "stack_vs_numpy_alloc_by_size": {k: round(v["ratio"], 3) for k, v in alloc.items()},
                "acquire_release_us": round(pools["acquire_release_us"], 3),
                **{k: round(v, 3) for k, v in pools.items() if k != "acquire_release_us"},
                **gpu,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
