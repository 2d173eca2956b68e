"""Affinity: topology read from fake sysfs trees, CpuSet algebra, pinned thread pools."""

from __future__ import annotations

import os
import pathlib
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncinfer.affinity import (
    CpuSet,
    PinnedThreadPool,
    cpus_for_worker,
    gpu_device_cpus,
    gpu_local_cpus,
    read_topology,
)
from asyncinfer.errors import ConfigError, UsageError
from asyncinfer.memory import HostAllocator, MemoryStack, cuda_available
from asyncinfer.pools import Pool

NO_CUDA = cuda_available()


def fake_sysfs(root: pathlib.Path, online: str, nodes: dict[int, str]) -> pathlib.Path:
    cpu = root / "devices/system/cpu"
    cpu.mkdir(parents=True)
    (cpu / "online").write_text(online + "\n")
    for node, cpulist in nodes.items():
        path = root / f"devices/system/node/node{node}"
        path.mkdir(parents=True)
        (path / "cpulist").write_text(cpulist + "\n")
    return root


def test_parse_and_format_round_trip() -> None:
    cpus = CpuSet.parse("0-3,8,10-11\n")
    assert sorted(cpus) == [0, 1, 2, 3, 8, 10, 11]
    assert str(cpus) == "0-3,8,10-11"
    assert str(CpuSet.parse("")) == "" and len(CpuSet.parse("")) == 0


@pytest.mark.parametrize("text", ["a-b", "3-1", "-1", "1-2-3", "0,,x"])
def test_bad_cpulist_names_the_text(text: str) -> None:
    with pytest.raises(ConfigError, match="bad cpulist"):
        CpuSet.parse(text)


def test_algebra() -> None:
    a, b = CpuSet.parse("0-5"), CpuSet.parse("4-9")
    assert str(a | b) == "0-9" and str(a.union(b)) == "0-9"
    assert str(a & b) == "4-5" and str(a.intersection(b)) == "4-5"
    assert str(a - b) == "0-3" and str(a.difference(b)) == "0-3"


def test_split_is_balanced_and_ordered() -> None:
    parts = CpuSet.parse("0-6").split(3)
    assert [str(p) for p in parts] == ["0-2", "3-4", "5-6"]
    with pytest.raises(ConfigError, match="cannot split 2 CPUs"):
        CpuSet.parse("0-1").split(3)


@given(st.frozensets(st.integers(0, 255), min_size=1), st.integers(1, 16))
def test_split_partitions_the_set(cpus: frozenset[int], n: int) -> None:
    cpuset = CpuSet(cpus)
    assert CpuSet.parse(str(cpuset)) == cpuset
    if n > len(cpus):
        return
    parts = cpuset.split(n)
    assert sum(len(p) for p in parts) == len(cpus)
    union = CpuSet()
    for part in parts:
        assert not (union & part)
        union = union | part
    assert union == cpuset
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_two_node_topology(tmp_path: pathlib.Path) -> None:
    root = fake_sysfs(tmp_path, "0-7", {0: "0-3", 1: "4-7", 2: ""})  # node2: memory only
    topology = read_topology(root, allowed=CpuSet.parse("0-7"))
    assert topology.nodes == {0: CpuSet.parse("0-3"), 1: CpuSet.parse("4-7")}
    assert topology.node_of(5) == 1
    assert [str(cpus_for_worker(i, 4, topology)) for i in range(4)] == ["0-3", "4-7"] * 2


def test_workers_get_only_allowed_cpus(tmp_path: pathlib.Path) -> None:
    root = fake_sysfs(tmp_path, "0-7", {0: "0-3", 1: "4-7"})
    topology = read_topology(root, allowed=CpuSet.parse("2-5"))
    assert [str(cpus_for_worker(i, 2, topology)) for i in range(2)] == ["2-3", "4-5"]
    only_node1 = read_topology(root, allowed=CpuSet.parse("6"))
    assert str(cpus_for_worker(0, 2, only_node1)) == "6"
    with pytest.raises(UsageError, match=r"outside 0\.\.1"):
        cpus_for_worker(2, 2, topology)


def test_machine_without_node_dir_is_one_node(tmp_path: pathlib.Path) -> None:
    root = fake_sysfs(tmp_path, "0-3", {})
    topology = read_topology(root, allowed=CpuSet.parse("0-3"))
    assert topology.nodes == {0: CpuSet.parse("0-3")}


def test_missing_sysfs_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="cannot read CPU topology"):
        read_topology(tmp_path)


def test_real_topology_covers_this_process() -> None:
    topology = read_topology()
    assert CpuSet.current().cpus <= topology.online.cpus
    assert cpus_for_worker(0, 1, topology)


def test_gpu_local_cpus_from_pci_sysfs(tmp_path: pathlib.Path) -> None:
    device = tmp_path / "bus/pci/devices/0000:17:00.0"
    device.mkdir(parents=True)
    (device / "local_cpulist").write_text("0-7,16-23\n")
    assert str(gpu_local_cpus("00000000:17:00.0", tmp_path)) == "0-7,16-23"  # NVML's form
    assert str(gpu_local_cpus("17:00.0", tmp_path)) == "0-7,16-23"
    with pytest.raises(ConfigError, match=r"no PCI device 0000:18:00\.0"):
        gpu_local_cpus("18:00.0", tmp_path)
    with pytest.raises(ConfigError, match="bad PCI bus id"):
        gpu_local_cpus("gpu0", tmp_path)


async def test_pinned_pool_threads_run_on_their_cpus() -> None:
    cpu = min(os.sched_getaffinity(0))
    pool = PinnedThreadPool(CpuSet.of([cpu]), name="pin-test", max_workers=2)
    try:
        masks = [await pool.run(os.sched_getaffinity, 0) for _ in range(4)]
        names = await pool.run(lambda: threading.current_thread().name)
    finally:
        pool.close()
    assert all(mask == {cpu} for mask in masks)
    assert names.startswith("pin-test")
    assert os.sched_getaffinity(0) != {cpu} or len(os.sched_getaffinity(0)) == 1
    assert pool.statistics()["completed"] == 5


async def test_closed_pool_refuses_work() -> None:
    pool = PinnedThreadPool(CpuSet.current(), name="closing")
    assert await pool.run(sum, [1, 2]) == 3
    pool.close()
    with pytest.raises(UsageError, match="'closing' is closed"):
        await pool.run(sum, [1])


@pytest.mark.skipif(NO_CUDA is None, reason="CUDA is available here; this checks the error path")
def test_gpu_device_cpus_without_cuda_says_what_is_missing() -> None:
    with pytest.raises(ConfigError, match="CUDA is not available"):
        gpu_device_cpus(0)


@pytest.mark.skipif(NO_CUDA is not None, reason=f"needs a GPU: {NO_CUDA}")
def test_gpu_device_cpus_on_this_machine() -> None:
    cpus = gpu_device_cpus(0)
    assert cpus and cpus.cpus <= read_topology().online.cpus


async def test_pool_threads_drop_arguments_before_the_caller_wakes() -> None:
    # A stack view passed to a pool thread must not outlive the await: the caller resets the
    # stack right after, as a lease's return does.
    stack = MemoryStack(HostAllocator().allocate(1 << 16), name="args")
    pool = PinnedThreadPool(CpuSet.current(), name="args", max_workers=2)
    try:
        for _ in range(200):
            x = stack.array((256,), np.float32)
            x.fill(1.0)
            assert await pool.run(np.sum, x) == 256.0
            del x
            stack.reset()
        # A failing call: its traceback holds the thread's frames; returning the lease clears
        # their locals, so the stack still resets and is not retired.
        stacks = Pool([stack], name="stacks", reset=MemoryStack.reset)
        with pytest.raises(ZeroDivisionError):
            async with stacks.acquire() as lease:
                await pool.run(lambda a: 1 // 0, lease.item.array((4,), np.int32))
        assert (stacks.statistics().retired, stacks.statistics().idle) == (0, 1)
    finally:
        pool.close()
