"""Affinity: CPU and NUMA topology from sysfs, CPU-set algebra, and thread pools pinned to CPUs.

Python code runs under the GIL, so a thread pool only adds throughput for work that releases it
(numpy, ONNX Runtime, TensorRT calls, decoding). Pinning those threads, and each worker process,
to the CPUs of one NUMA node keeps their memory traffic local::

    topology = read_topology()                 # reads /sys; tests pass a fake root
    cpus = cpus_for_worker(index, workers, topology)
    pin_process(cpus)                          # the process model calls this in worker `index`
    pool = PinnedThreadPool(cpus, name="onnx")
    result = await pool.run(session.run, None, feeds)

``gpu_local_cpus("0000:17:00.0")`` reads the CPUs wired to a GPU's PCI device from sysfs;
``gpu_device_cpus(0)`` finds CUDA device 0's PCI id first (needs cuda-python).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from . import _cudart
from .errors import ConfigError, UsageError

__all__ = [
    "CpuSet",
    "PinnedThreadPool",
    "Topology",
    "cpus_for_worker",
    "gpu_device_cpus",
    "gpu_local_cpus",
    "pin_process",
    "read_topology",
]

T = TypeVar("T")
SYSFS = pathlib.Path("/sys")


@dataclasses.dataclass(frozen=True, slots=True)
class CpuSet:
    """An immutable set of CPU ids with the cpulist text form of sysfs ("0-3,8")."""

    cpus: frozenset[int] = frozenset()

    @classmethod
    def of(cls, cpus: Iterable[int]) -> CpuSet:
        cpus = frozenset(cpus)
        if any(cpu < 0 for cpu in cpus):
            raise ConfigError(f"CPU ids are >= 0, got {sorted(cpus)}")
        return cls(cpus)

    @classmethod
    def parse(cls, text: str) -> CpuSet:
        """Parse a cpulist such as ``"0-3,8,10-11"`` (an empty string is the empty set)."""
        cpus: set[int] = set()
        for part in text.strip().split(","):
            part = part.strip()
            if part:
                cpus.update(_parse_range(part, text))
        return cls(frozenset(cpus))

    @classmethod
    def current(cls) -> CpuSet:
        """The CPUs this process may run on (its affinity mask)."""
        return cls(frozenset(os.sched_getaffinity(0)))

    def __str__(self) -> str:
        return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in _runs(sorted(self.cpus)))

    def __repr__(self) -> str:
        return f"CpuSet({str(self)!r})"

    def __len__(self) -> int:
        return len(self.cpus)

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self.cpus))

    def __contains__(self, cpu: object) -> bool:
        return cpu in self.cpus

    def __or__(self, other: CpuSet) -> CpuSet:
        return CpuSet(self.cpus | other.cpus)

    def __and__(self, other: CpuSet) -> CpuSet:
        return CpuSet(self.cpus & other.cpus)

    def __sub__(self, other: CpuSet) -> CpuSet:
        return CpuSet(self.cpus - other.cpus)

    def union(self, other: CpuSet) -> CpuSet:
        return self | other

    def intersection(self, other: CpuSet) -> CpuSet:
        return self & other

    def difference(self, other: CpuSet) -> CpuSet:
        return self - other

    def split(self, n: int) -> list[CpuSet]:
        """``n`` disjoint, contiguous parts in CPU order whose sizes differ by at most one.

        Needs ``1 <= n <= len(self)``: an empty part could not run anything.
        """
        if not 1 <= n <= len(self.cpus):
            raise ConfigError(f"cannot split {len(self.cpus)} CPUs ({self}) into {n} parts")
        ordered = sorted(self.cpus)
        size, extra = divmod(len(ordered), n)
        parts, start = [], 0
        for i in range(n):
            end = start + size + (1 if i < extra else 0)
            parts.append(CpuSet(frozenset(ordered[start:end])))
            start = end
        return parts


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():  # the awaiting task was cancelled; the result is dropped
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _parse_range(part: str, text: str) -> range:
    try:
        first, _, last = part.partition("-")
        low, high = int(first), int(last or first)
    except ValueError:
        raise ConfigError(f"bad cpulist {text!r}: expected e.g. '0-3,8', got {part!r}") from None
    if low < 0 or high < low:
        raise ConfigError(f"bad cpulist {text!r}: range {part!r} is empty or negative")
    return range(low, high + 1)


def _runs(ordered: list[int]) -> Iterator[tuple[int, int]]:
    if not ordered:
        return
    start = prev = ordered[0]
    for cpu in ordered[1:]:
        if cpu != prev + 1:
            yield start, prev
            start = cpu
        prev = cpu
    yield start, prev


@dataclasses.dataclass(frozen=True, slots=True)
class Topology:
    """Online CPUs, the CPUs of each NUMA node, and the CPUs this process may use."""

    online: CpuSet
    nodes: dict[int, CpuSet]
    allowed: CpuSet

    @property
    def usable(self) -> CpuSet:
        return self.online & self.allowed

    def node_of(self, cpu: int) -> int:
        for node, cpus in self.nodes.items():
            if cpu in cpus:
                return node
        raise ConfigError(f"CPU {cpu} belongs to no NUMA node; nodes are {self.nodes}")


def read_topology(
    root: str | os.PathLike[str] = SYSFS, *, allowed: CpuSet | None = None
) -> Topology:
    """Read CPUs and NUMA nodes from a sysfs tree (``/sys`` by default; tests pass a fake one).

    A machine (or container) without ``devices/system/node`` is one node holding every online
    CPU. ``allowed`` defaults to this process's affinity mask.
    """
    root = pathlib.Path(root)
    online = CpuSet.parse(_read(root / "devices/system/cpu/online"))
    nodes: dict[int, CpuSet] = {}
    node_dir = root / "devices/system/node"
    for path in sorted(node_dir.glob("node[0-9]*")):
        cpus = CpuSet.parse(_read(path / "cpulist")) & online
        if cpus:  # memory-only nodes (CXL, HBM) have no CPUs to pin to
            nodes[int(path.name[4:])] = cpus
    if not nodes:
        nodes = {0: online}
    return Topology(online, nodes, allowed if allowed is not None else CpuSet.current())


def _read(path: pathlib.Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read CPU topology from {path}: {exc.strerror}") from None


def cpus_for_worker(index: int, workers: int, topology: Topology) -> CpuSet:
    """The CPUs worker ``index`` of ``workers`` should be pinned to.

    Workers go round-robin over the NUMA nodes that hold usable CPUs: worker ``i`` gets every
    usable CPU of node ``i % nodes``, and the workers sharing a node share its CPUs (the kernel
    balances them inside the node). With one node, every worker gets every usable CPU.
    """
    if not 0 <= index < workers:
        raise UsageError(f"worker index {index} is outside 0..{workers - 1}")
    usable = topology.usable
    if not usable:
        raise ConfigError(f"no usable CPU: online {topology.online}, allowed {topology.allowed}")
    nodes = [cpus & usable for _, cpus in sorted(topology.nodes.items())]
    nodes = [cpus for cpus in nodes if cpus] or [usable]
    return nodes[index % len(nodes)]


def pin_process(cpus: CpuSet) -> None:
    """Pin the calling process (its main thread and threads started later) to ``cpus``."""
    _set_affinity(cpus)


def _set_affinity(cpus: CpuSet) -> None:
    # pid 0 is the calling thread on Linux; threads created afterwards inherit its mask.
    try:
        os.sched_setaffinity(0, cpus.cpus)
    except OSError as exc:
        raise ConfigError(f"cannot pin to CPUs {cpus}: {exc.strerror}") from None


def gpu_local_cpus(pci_bus_id: str, root: str | os.PathLike[str] = SYSFS) -> CpuSet:
    """The CPUs close to the PCI device ``pci_bus_id`` (e.g. ``"0000:17:00.0"`` or ``"17:00.0"``).

    Reads ``bus/pci/devices/<id>/local_cpulist`` of sysfs. The id comes from
    ``nvidia-smi --query-gpu=pci.bus_id`` or cudaDeviceGetPCIBusId.
    """
    bus_id = _normalize_bus_id(pci_bus_id)
    path = pathlib.Path(root) / "bus/pci/devices" / bus_id / "local_cpulist"
    if not path.exists():
        raise ConfigError(f"no PCI device {bus_id}: {path} does not exist")
    return CpuSet.parse(_read(path))


def gpu_device_cpus(device: int = 0, root: str | os.PathLike[str] = SYSFS) -> CpuSet:
    """The CPUs close to CUDA device ``device``: its PCI bus id from the CUDA runtime
    (cudaDeviceGetPCIBusId through cuda-python), then :func:`gpu_local_cpus`."""
    cudart = _cudart.runtime()
    raw = _cudart.check(cudart.cudaDeviceGetPCIBusId(64, device), "cudaDeviceGetPCIBusId")
    text = raw.decode() if isinstance(raw, bytes | bytearray) else str(raw)
    return gpu_local_cpus(text.rstrip("\x00"), root)


def _normalize_bus_id(pci_bus_id: str) -> str:
    parts = pci_bus_id.strip().lower().split(":")
    if len(parts) == 2:
        parts.insert(0, "0000")
    if len(parts) != 3 or "." not in parts[2]:
        raise ConfigError(f"bad PCI bus id {pci_bus_id!r}: expected DDDD:BB:DD.F or BB:DD.F")
    # NVML reports an 8-digit domain ("00000000:17:00.0"); sysfs uses 4 digits.
    domain = parts[0][-4:].rjust(4, "0")
    return f"{domain}:{parts[1]}:{parts[2]}"


class PinnedThreadPool:
    """A thread pool whose threads run only on ``cpus``; for work that releases the GIL.

    ``await pool.run(fn, *args)`` runs ``fn`` in a pool thread. Cancelling the awaiting task
    does not stop a call that already started (a thread cannot be interrupted); its result is
    dropped. ``close()`` waits for running calls and refuses new ones.
    """

    def __init__(self, cpus: CpuSet, *, name: str = "pinned", max_workers: int | None = None):
        if not cpus:
            raise ConfigError(f"thread pool {name!r} needs at least one CPU")
        self.cpus = cpus
        self.name = name
        self.max_workers = max_workers if max_workers is not None else len(cpus)
        if self.max_workers < 1:
            raise ConfigError(f"thread pool {name!r}: max_workers must be >= 1")
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._completed = 0
        self._running = 0

    def _pool(self) -> ThreadPoolExecutor:
        # Created on first use, not in the constructor: constructors start no threads.
        with self._lock:
            if self._closed:
                raise UsageError(f"thread pool {self.name!r} is closed")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self.max_workers,
                    thread_name_prefix=self.name,
                    initializer=_set_affinity,
                    initargs=(self.cpus,),
                )
            return self._executor

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on a pinned thread and return its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        job: list[Any] = [fn, args, kwargs]
        self._pool().submit(self._work, job, loop, future)
        return await future

    def _work(
        self, job: list[Any], loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]
    ) -> None:
        # The thread drops its references to fn and its arguments *before* the awaiting task
        # wakes up. Arguments may be views of a leased memory stack; if the thread still held
        # them when the task returned the lease, the stack would refuse to reset.
        fn, args, kwargs = job
        job.clear()
        with self._lock:
            self._running += 1
        result: Any = None
        error: BaseException | None = None
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            error = exc
        finally:
            del fn, args, kwargs
            with self._lock:
                self._running -= 1
                self._completed += 1
        # RuntimeError: the loop closed while the call ran, so nobody is waiting.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, future, result, error)

    def close(self) -> None:
        """Wait for running calls, then stop the threads; later ``run`` calls fail."""
        with self._lock:
            executor, self._executor = self._executor, None
            self._closed = True
        if executor is not None:
            executor.shutdown(wait=True)

    def statistics(self) -> dict[str, Any]:
        return {
            "cpus": str(self.cpus),
            "threads": self.max_workers,
            "running": self._running,
            "completed": self._completed,
        }
