"""Example 07: three inference servers behind nginx, one of them killed in the middle of a siege.

Starts three `asyncinfer serve` backends (the example repository's `simple` model) and nginx in
front of them (deploy/nginx's configuration), all on free loopback ports; sieges nginx at a
constant rate; SIGKILLs one backend halfway through; then prints how many calls each backend
answered (from nginx's access log) and the siege summary. Only the calls the killed backend had
in flight fail: nginx takes it out of rotation and the other two carry the load.

Run it:   python examples/07_scale_out/scale_out.py [--rate 200] [--seconds 6]
Needs Debian's nginx (bash scripts/install_nginx.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from asyncinfer.client import AsyncClient, Constant, Method, Siege, SiegeResult
from asyncinfer.pb.inference import grpc_service_pb2 as pb
from asyncinfer.testing import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "nginx"))
from nginx_lb import Nginx, free_port  # noqa: E402

INFER = Method.of(
    pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods_by_name["ModelInfer"]
)
BACKENDS = 3
KILLED = 1  # the index of the backend that is killed
WINDOW = 1.0  # seconds per progress line


def backend(port: int) -> ServerProcess:
    """An inference server on ``port`` that loads only the `simple` model."""
    return ServerProcess([
        sys.executable, "-m", "asyncinfer.cli", "serve",
        "--model-repository", str(ROOT / "examples" / "model_repository"),
        "--model-control-mode", "explicit", "--load-model", "simple",
        "--grpc-port", str(port), "--log-format", "text",
        "--allow-http", "false", "--allow-metrics", "false",
    ], timeout=60)  # fmt: skip


def request() -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="simple")
    for name in ("INPUT0", "INPUT1"):
        message.inputs.add(name=name, datatype="INT32", shape=[1, 16])
        message.raw_input_contents.append(np.arange(16, dtype=np.int32).tobytes())
    return message


async def siege_and_kill(
    address: str, victim: ServerProcess, args: argparse.Namespace
) -> tuple[SiegeResult, float]:
    """Siege ``address``; SIGKILL ``victim`` halfway. Returns the result and the kill's time
    in seconds since the siege began."""
    async with AsyncClient(address, INFER, timeout=10) as client:
        siege = Siege(client, Constant(args.rate), duration=args.seconds, progress_interval=WINDOW)
        started = time.perf_counter()

        async def kill() -> float:
            await asyncio.sleep(args.seconds / 2)
            os.kill(victim.pid, signal.SIGKILL)
            at = time.perf_counter() - started
            print(f"killed backend {KILLED} (pid {victim.pid}) at t={at:.1f}s", flush=True)
            return at

        killer = asyncio.create_task(kill())
        result = await siege.run(request())
        return result, await killer


def report(
    lb: Nginx, addresses: list[str], result: SiegeResult, killed_at: float
) -> dict[str, object]:
    counts = lb.upstream_counts()
    print("calls answered per backend (nginx's access log):")
    for index, address in enumerate(addresses):
        note = "  (killed)" if index == KILLED else ""
        print(f"  {address:22} {counts.get(address, 0):6}{note}")
    if counts.get(""):
        print(f"  {'none (nginx answered)':22} {counts['']:6}  (in flight on the killed backend)")
    # Progress windows that began a second or more after the kill: everything succeeded there.
    later = [w for w in result.timeline if w.t - WINDOW >= killed_at + 1.0]
    failed_after = sum(w.failed for w in later)
    print(result.report.line())
    print(f"failed calls from 1 s after the kill on: {failed_after}")
    return {
        "per_backend": {a: counts.get(a, 0) for a in addresses},
        "answered_by_nginx": counts.get("", 0),
        "killed": addresses[KILLED],
        "calls": result.report.calls,
        "ok": result.report.ok,
        "failed_after_kill": failed_after,
    }


async def main(args: argparse.Namespace) -> int:
    ports = [free_port() for _ in range(BACKENDS)]
    addresses = [f"127.0.0.1:{port}" for port in ports]
    servers = [backend(port).start() for port in ports]
    try:
        with tempfile.TemporaryDirectory(prefix="asyncinfer-nginx-") as folder, \
                Nginx(addresses, folder=Path(folder), fail_timeout=2) as lb:  # fmt: skip
            print(f"backends {' '.join(addresses)}; nginx on {lb.grpc_address}", flush=True)
            result, killed_at = await siege_and_kill(lb.grpc_address, servers[KILLED], args)
            summary = report(lb, addresses, result, killed_at)
    finally:
        for server in servers:
            server.stop()
    print(json.dumps(summary))
    return 0 if summary["failed_after_kill"] == 0 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="calls per second")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of the siege")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
