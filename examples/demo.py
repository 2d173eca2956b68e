"""`make demo`: start the ping service, load it with the sync, async and siege clients; then
serve examples/model_repository and drive it with the InferRunner API and the siege client,
and siege the dynamically batched ONNX model (examples/06_dynamic_batching); then `curl` a
model load, a JSON infer and an unload against the HTTP port of an explicit-mode server;
print a summary table, stop the servers, exit 0 (non-zero if any call failed)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import pathlib
import shutil
import subprocess
import sys
import types

HERE = pathlib.Path(__file__).parent


def _load(name: str, path: pathlib.Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ping_client = _load("ping_client", HERE / "01_ping" / "client.py")
inference_client = _load("inference_client", HERE / "05_inference_client" / "client.py")
batching_client = _load("batching_client", HERE / "06_dynamic_batching" / "client.py")

from asyncinfer.client import Report  # noqa: E402
from asyncinfer.testing import ServerProcess  # noqa: E402

SECONDS = 3.0


def table(rows: list[tuple[str, Report]]) -> str:
    header = (
        f"{'client':<18}{'calls':>8}{'ok':>8}{'failed':>8}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
    )
    lines = [header, "-" * len(header)]
    for name, r in rows:
        lines.append(
            f"{name:<18}{r.calls:>8}{r.ok:>8}{r.failed:>8}{r.rate:>10,.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
        )
    return "\n".join(lines)


def main() -> int:
    server = [sys.executable, str(HERE / "01_ping" / "server.py"), "--port", "0"]
    with ServerProcess(server) as proc:
        target = proc.address
        print(f"ping service on {target}; {SECONDS:.0f} s per client")
        rows = [
            ("sync (1 in flight)", ping_client.run_sync(target, SECONDS)),
            ("async (16)", asyncio.run(ping_client.run_async(target, SECONDS))),
            ("siege (1500/s)", asyncio.run(ping_client.run_siege(target, SECONDS))),
        ]
    inference = [
        *(sys.executable, "-m", "asyncinfer.cli", "serve", "--grpc-port", "0"),
        *("--allow-http", "false", "--allow-metrics", "false"),
        *("--model-repository", str(HERE / "model_repository")),
    ]
    with ServerProcess(inference) as proc:
        target = proc.address
        print(f"inference service on {target}; {SECONDS:.0f} s per client")
        rows += [
            ("InferRunner (16)", asyncio.run(inference_client.run_runner(target, SECONDS))),
            ("siege infer (500/s)", asyncio.run(inference_client.run_siege(target, SECONDS))),
            ("siege mlp (1000/s)", asyncio.run(batching_client.run_siege(target, SECONDS, 1000))),
        ]
        batches = asyncio.run(batching_client.batching_summary(target))
    print()
    print("asyncinfer demo: examples/01_ping, examples/05_inference_client (model `simple`)")
    print("and examples/06_dynamic_batching (model `mlp_onnx`, dynamic batching)")
    print(table(rows))
    print(batches)
    failed = sum(r.failed for _, r in rows) + curl_model_control()
    print(f"\nserver stopped; {failed} failed calls")
    return 1 if failed else 0


def curl_model_control() -> int:
    """curl against the HTTP port: load `simple`, infer it with JSON, unload it; the number of
    curl calls that failed."""
    curl = shutil.which("curl")
    if curl is None:
        print("\ncurl is not installed: the HTTP part of the demo is left out")
        return 0
    server = [
        *(sys.executable, "-m", "asyncinfer.cli", "serve", "--grpc-port", "0", "--http-port", "0"),
        *("--allow-metrics", "false", "--model-control-mode", "explicit"),
        *("--model-repository", str(HERE / "model_repository")),
    ]
    body = {
        "inputs": [
            {"name": name, "datatype": "INT32", "shape": [1, 16], "data": list(range(16))}
            for name in ("INPUT0", "INPUT1")
        ]
    }
    failed = 0
    with ServerProcess(server) as proc:
        base = proc.http_url
        print(f"\nHTTP/REST on {base} (curl):")
        for args in (
            ["-X", "POST", f"{base}/v2/repository/models/simple/load"],
            ["-X", "POST", f"{base}/v2/models/simple/infer", "-d", json.dumps(body)],
            ["-X", "POST", f"{base}/v2/repository/models/simple/unload"],
            [f"{base}/v2/models/simple/ready"],
        ):
            done = subprocess.run(
                [curl, "-s", "--max-time", "20", "-w", " -> HTTP %{http_code}", *args],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            shown = " ".join(a if len(a) < 60 else a[:57] + "..." for a in args)
            print(f"  curl {shown}\n    {done.stdout[:160]}")
            expected = " -> HTTP 400" if args[0].endswith("/ready") else " -> HTTP 200"
            failed += done.returncode != 0 or not done.stdout.endswith(expected)
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
