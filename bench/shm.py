"""Benchmark: 16 MiB FP32 identity over shared memory against plain gRPC bytes, with a memcpy floor.

Two paths, each with a shared-memory mode and a bytes mode, at concurrency 1 and 4:

- ``triton``: the inference service (``identity_fp32``, a python-backend identity model in a
  temporary repository) with Triton's system shared-memory extension (POSIX regions registered
  by the client; input and output in regions) against raw_input_contents / raw_output_contents.
- ``sysv``: example 03's model service (``identity``) with tensors in the client's SysV ring
  (input and output by descriptor) against inline bytes.

Every request of a mode is serialized once up front and sent as bytes, and every reply is parsed
with protobuf, so both modes pay the same client overhead and differ only in how the tensor
travels (the bytes mode's request is hand-framed too, so protobuf's slow large-message
serializer is not what is measured). Each worker checks its first reply's tensor. The servers
run in their own processes and the load client in another; each measurement is the median of
``--runs`` windows. The memcpy floor is numpy's copy of the same 16 MiB between two mapped
buffers, median of 30.

``perf_analyzer --shared-memory=system`` runs too when ``PERF_ANALYZER`` names its binary (see
TOOLS.md for the one that starts on Debian 12; set LD_LIBRARY_PATH for it as described there),
or when the repository has scripts/perf_analyzer.sh and its .venv-pa.

Run:   .venv/bin/python bench/shm.py [--duration 1.5] [--runs 3] [--mib 16]
Last line: one JSON object with ``shm_vs_bytes_min`` (the smallest shm/bytes throughput ratio
over paths and concurrencies) and ``shm_latency_vs_memcpy`` (the larger of the two paths'
concurrency-1 shm median latency over the memcpy floor).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import mmap
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from _harness import emit

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "03_shm_preprocess"
MODEL = "identity_fp32"
MiB = 1 << 20
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 256 * MiB),
    ("grpc.max_receive_message_length", 256 * MiB),
]

_CONFIG = f"""name: "{MODEL}"
backend: "python"
max_batch_size: 0
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] }} ]
"""
_MODEL = """from asyncinfer.inference.python_model import Response, Tensor


class Model:
    async def execute(self, requests):
        return [Response([Tensor("OUTPUT0", r.input("INPUT0").as_numpy())]) for r in requests]
"""
_TRITON_SERVER = """
import asyncio, sys
from asyncinfer.inference.app import build_server

async def main():
    server = build_server(sys.argv[1], grpc_port=0, allow_client_shm=True)
    await server.start()
    print(f"listening on 127.0.0.1:{server.port}", flush=True)
    await server.wait_for_termination()

asyncio.run(main())
"""


# --------------------------------------------------------------------------- servers


@contextlib.contextmanager
def _process(args: list[str]) -> Iterator[str]:
    """A server process that prints "listening on HOST:PORT"; yields the address."""
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"{args[1:3]} did not start: {line!r}")
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(30)


@contextlib.contextmanager
def servers() -> Iterator[dict[str, str]]:
    with tempfile.TemporaryDirectory() as repo:
        (pathlib.Path(repo) / MODEL / "1").mkdir(parents=True)
        (pathlib.Path(repo) / MODEL / "config.pbtxt").write_text(_CONFIG)
        (pathlib.Path(repo) / MODEL / "1" / "model.py").write_text(_MODEL)
        with (
            _process([sys.executable, "-c", _TRITON_SERVER, repo]) as triton,
            _process([sys.executable, str(EXAMPLE / "shm_model.py"), "--port", "0"]) as sysv,
        ):
            yield {"triton": triton, "sysv": sysv}


# --------------------------------------------------------------------------- client side


class _TritonWorker:
    """One in-flight slot against the inference service, with its own regions in shm mode."""

    def __init__(self, address: str, mode: str, data: np.ndarray, index: int) -> None:
        from tritonclient.utils import shared_memory as shm

        from asyncinfer.pb.inference import grpc_service_pb2 as pb

        self.path = "/inference.GRPCInferenceService/ModelInfer"
        self.reply_type = pb.ModelInferResponse
        self.data = data
        self.mode = mode
        self.handles: list[Any] = []
        request = pb.ModelInferRequest(model_name=MODEL)
        tensor = request.inputs.add(name="INPUT0", datatype="FP32", shape=[data.size])
        output = request.outputs.add(name="OUTPUT0")
        if mode == "bytes":
            request.raw_input_contents.append(data.tobytes())
            self.request = request.SerializeToString()
            return
        pid = os.getpid()
        for role, params in (("in", tensor.parameters), ("out", output.parameters)):
            name = f"bench_{role}_{index}"
            handle = shm.create_shared_memory_region(name, f"/{name}_{pid}", data.nbytes)
            self.handles.append(handle)
            params["shared_memory_region"].string_param = name
            params["shared_memory_byte_size"].int64_param = data.nbytes
        shm.set_shared_memory_region(self.handles[0], [data])
        self.request = request.SerializeToString()

    def register(self, client: Any, index: int) -> None:
        pid = os.getpid()
        for role in ("in", "out") if self.handles else ():
            name = f"bench_{role}_{index}"
            client.register_system_shared_memory(name, f"/{name}_{pid}", self.data.nbytes)

    def check(self, reply: Any) -> None:
        if self.mode == "bytes":
            got = np.frombuffer(reply.raw_output_contents[0], np.float32)
        else:
            from tritonclient.utils import shared_memory as shm

            got = shm.get_contents_as_numpy(self.handles[1], np.float32, [self.data.size])
        if not np.array_equal(got, self.data):
            raise AssertionError("the identity output differs from the input")

    def close(self) -> None:
        from tritonclient.utils import shared_memory as shm

        for handle in self.handles:
            shm.destroy_shared_memory_region(handle)


class _SysvWorker:
    """One in-flight slot against example 03's model service, with its own ring slot."""

    def __init__(self, ring: Any, mode: str, data: np.ndarray) -> None:
        from shm_model import Infer, preprocess_pb2

        from asyncinfer.shm.tensors import framed_tensor_message, shm_ref, shm_tensor

        self.path = Infer.rpc_path()
        self.reply_type = preprocess_pb2.InferReply
        self.data = data
        self.slot = None
        head = preprocess_pb2.InferRequest(model="identity")
        if mode == "bytes":
            self.request = head.SerializeToString() + framed_tensor_message(2, data)
            return
        self.slot = ring.allocate_nowait(2 * data.nbytes)
        self.slot.array(np.float32, data.shape)[:] = data
        head.input.CopyFrom(shm_tensor(self.slot.part(0, data.nbytes), np.float32, data.shape))
        head.output.CopyFrom(shm_ref(self.slot.part(data.nbytes, data.nbytes)))
        self.request = head.SerializeToString()

    def check(self, reply: Any) -> None:
        if self.slot is None:
            got = np.frombuffer(reply.output.raw, np.float32)
        else:
            got = self.slot.array(np.float32, self.data.shape, offset=self.data.nbytes)
        if not np.array_equal(got, self.data):
            raise AssertionError("the identity output differs from the input")

    def close(self) -> None:
        if self.slot is not None:
            self.slot.release()


async def _windows(
    address: str, workers: list[Any], duration: float, runs: int
) -> list[dict[str, float]]:
    import grpc

    async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        calls = [
            channel.unary_unary(
                w.path, request_serializer=None, response_deserializer=w.reply_type.FromString
            )
            for w in workers
        ]
        for worker, call in zip(workers, calls, strict=True):
            worker.check(await call(worker.request, timeout=60))  # warm-up and correctness
        results = []
        for _ in range(runs):
            results.append(await _window(workers, calls, duration))
        return results


async def _window(workers: list[Any], calls: list[Any], duration: float) -> dict[str, float]:
    """Every worker calls back to back for ``duration`` seconds; throughput and median latency."""
    latencies: list[float] = []
    deadline = time.perf_counter() + duration

    async def loop(worker: Any, call: Any) -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await call(worker.request, timeout=60)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(loop(w, c) for w, c in zip(workers, calls, strict=True)))
    elapsed = time.perf_counter() - start
    return {"rps": len(latencies) / elapsed, "latency_ms": statistics.median(latencies) * 1e3}


def client_main(args: argparse.Namespace) -> int:
    """The load client process: one (path, mode, concurrency) cell, several windows."""
    sys.path.insert(0, str(EXAMPLE))  # example 03's modules name its RPCs
    data = np.random.default_rng(0).standard_normal(args.mib * MiB // 4).astype(np.float32)
    workers: list[Any] = []
    ring = None
    try:
        if args.path == "triton":
            import tritonclient.grpc as grpcclient

            with grpcclient.InferenceServerClient(args.target) as client:
                client.unregister_system_shared_memory()
                for index in range(args.concurrency):
                    workers.append(_TritonWorker(args.target, args.mode, data, index))
                    workers[-1].register(client, index)
        else:
            from asyncinfer.shm import SysvRing

            ring = SysvRing(2 * data.nbytes, args.concurrency).open()
            workers = [_SysvWorker(ring, args.mode, data) for _ in range(args.concurrency)]
        results = asyncio.run(_windows(args.target, workers, args.duration, args.runs))
    finally:
        for worker in workers:
            worker.close()
        if ring is not None:
            ring.close()
    print(json.dumps(results))
    return 0


# --------------------------------------------------------------------------- driver


def memcpy_floor_ms(mib: int) -> float:
    """Median time of one numpy copy of ``mib`` MiB between two already-faulted buffers.

    Both buffers are anonymous mmaps, like the shared-memory regions the servers write into:
    numpy's own large allocations here showed medians 5x their minimum (page-level effects of
    fresh heap memory), which would flatter every ratio against this floor.
    """
    nbytes = mib * MiB
    src_map, dst_map = mmap.mmap(-1, nbytes), mmap.mmap(-1, nbytes)
    src = np.frombuffer(src_map, np.float32)
    dst = np.frombuffer(dst_map, np.float32)
    src[:] = np.random.default_rng(1).standard_normal(src.size)
    times = []
    for attempt in range(33):
        start = time.perf_counter()
        np.copyto(dst, src)
        if attempt >= 3:  # the first copies fault the destination's pages in
            times.append(time.perf_counter() - start)
    del src, dst
    src_map.close()
    dst_map.close()
    return statistics.median(times) * 1e3


def run_cell(
    target: str, path: str, mode: str, concurrency: int, args: argparse.Namespace
) -> dict[str, float]:
    command = [
        sys.executable, __file__, "--client", path, mode, "--target", target,
        "--concurrency", str(concurrency), "--duration", str(args.duration),
        "--runs", str(args.runs), "--mib", str(args.mib),
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if output.returncode != 0:
        raise RuntimeError(f"client {path}/{mode}/c{concurrency} failed:\n{output.stderr}")
    windows = json.loads(output.stdout.splitlines()[-1])
    return {
        "rps": statistics.median(w["rps"] for w in windows),
        "latency_ms": statistics.median(w["latency_ms"] for w in windows),
    }


def _perf_analyzer_binary() -> str | None:
    """PERF_ANALYZER, else the repository's scripts/perf_analyzer.sh when .venv-pa exists."""
    if os.environ.get("PERF_ANALYZER"):
        return os.environ["PERF_ANALYZER"]
    wrapper = ROOT / "scripts" / "perf_analyzer.sh"
    if wrapper.exists() and (ROOT / ".venv-pa" / "bin" / "perf_analyzer").exists():
        return str(wrapper)
    return None


def perf_analyzer(target: str, mib: int) -> dict[str, Any]:
    """perf_analyzer with --shared-memory=system; one retry, more lenient, when unstable."""
    binary = _perf_analyzer_binary()
    if binary is None:
        return {"skipped": "no perf_analyzer: set PERF_ANALYZER or set up .venv-pa (TOOLS.md)"}
    elements = mib * MiB // 4
    result = None
    for stability in ("50", "100"):
        command = [
            binary, "-m", MODEL, "-u", target, "-i", "grpc", "--shared-memory=system",
            f"--output-shared-memory-size={mib * MiB}", "--shape", f"INPUT0:{elements}",
            "--concurrency-range", "1:4:3", "-p", "2000", "-s", stability, "--max-trials", "5",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        print(result.stdout[-4000:], result.stderr[-2000:], sep="\n", flush=True)
        if "Failed to obtain stable measurement" not in result.stdout + result.stderr:
            break
    assert result is not None
    found = re.findall(r"Concurrency: (\d+), throughput: ([\d.]+) infer/sec", result.stdout)
    return {
        "returncode": result.returncode,
        "stability_percent": int(stability),
        "infer_per_sec": {f"c{c}": float(t) for c, t in found},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=1.5, help="seconds per window")
    parser.add_argument("--runs", type=int, default=3, help="windows per cell; medians reported")
    parser.add_argument("--mib", type=int, default=16, help="tensor size in MiB")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument(
        "--no-perf-analyzer", action="store_true", help="skip perf_analyzer even where it is set up"
    )
    parser.add_argument("--client", nargs=2, metavar=("PATH", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        args.path, args.mode = args.client
        args.concurrency = args.concurrency[0]
        return client_main(args)
    floor = memcpy_floor_ms(args.mib)
    print(f"memcpy of {args.mib} MiB: {floor:.2f} ms (median of 30)", flush=True)
    cells: dict[str, dict[str, float]] = {}
    with servers() as targets:
        for path, target in targets.items():
            for concurrency in args.concurrency:
                for mode in ("shm", "bytes"):
                    cell = run_cell(target, path, mode, concurrency, args)
                    cells[f"{path}/{mode}/c{concurrency}"] = cell
                    print(
                        f"{path:6} {mode:5} c={concurrency}: {cell['rps']:8.1f} req/s, "
                        f"median {cell['latency_ms']:7.2f} ms",
                        flush=True,
                    )
        pa = (
            {"skipped": "--no-perf-analyzer"}
            if args.no_perf_analyzer
            else perf_analyzer(targets["triton"], args.mib)
        )
    ratios = {
        f"{path}/c{c}": cells[f"{path}/shm/c{c}"]["rps"] / cells[f"{path}/bytes/c{c}"]["rps"]
        for path in ("triton", "sysv")
        for c in args.concurrency
    }
    latency_ratios = {
        path: cells[f"{path}/shm/c{min(args.concurrency)}"]["latency_ms"] / floor
        for path in ("triton", "sysv")
    }
    summary = {
        "shm_vs_bytes_min": round(min(ratios.values()), 2),
        "shm_latency_vs_memcpy": round(max(latency_ratios.values()), 2),
        "shm_vs_bytes": {k: round(v, 2) for k, v in ratios.items()},
        "shm_latency_vs_memcpy_by_path": {k: round(v, 2) for k, v in latency_ratios.items()},
        "memcpy_ms": round(floor, 3),
        "mib": args.mib,
        "cells": {k: {m: round(v, 2) for m, v in cell.items()} for k, cell in cells.items()},
        "perf_analyzer": pa,
    }
    emit(summary, "shm")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
