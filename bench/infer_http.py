"""Benchmark: Triton's `simple` over HTTP/REST (JSON and binary tensors), served by asyncinfer's
HTTP front end, by a bare aiohttp server doing the same arithmetic, by the same bare server on
Starlette/uvicorn (the library choice), by MLServer's REST endpoint and by real Triton's HTTP
endpoint (the PyTriton wheel's tritonserver, python backend), in one run on one machine; and
4 MiB binary tensors (`custom_identity_int32`) against the bare aiohttp server.

One load client (bench/_http_load_client.py, aiohttp's client at fixed concurrency, a separate
process) drives every server the same way, for several short rounds in an order rotated per
round; the figures are medians. MLServer takes JSON only (it has no binary tensor extension).

Goals (issue 12): >= 0.9 x the bare server, >= 3 x MLServer, >= 1 x Triton at every
concurrency; 4 MiB binary >= 0.9 x bare.

Run: .venv/bin/python bench/infer_http.py [--quick] [--servers asyncinfer,bare,...]
The last stdout line is one JSON object with `ratio_vs_bare_min`, `ratio_vs_mlserver_min`,
`ratio_vs_triton_min`, `large_ratio_vs_bare_min` and `library_aiohttp_vs_starlette`.
Exit status 1 when any request failed.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _infer_common as common
from _harness import (
    BENCH,
    BUILD,
    ROOT,
    ReadyCheck,
    RunningServer,
    ServerSpec,
    cpu_seconds,
    emit,
    python,
    run_json,
    serving,
)
from _peers import MLSERVER_VENV, ensure_mlserver
from _triton import triton_spec

SERVERS = ("asyncinfer", "bare", "starlette", "mlserver", "triton")
ENCODINGS = ("json", "binary")
LARGE_ELEMENTS = 1 << 20  # INT32: 4 MiB each way
GOALS = {
    "ratio_vs_bare_min": 0.9,
    "ratio_vs_mlserver_min": 3.0,
    "ratio_vs_triton_min": 1.0,
    "large_ratio_vs_bare_min": 0.9,
}


def http_ready(*models: str) -> ReadyCheck:
    """Ready when GET /v2/health/ready (and each model's /ready) answers 200."""

    def check(address: str) -> bool:
        paths = ["/v2/health/ready", *(f"/v2/models/{m}/ready" for m in models)]
        try:
            for path in paths:
                with urllib.request.urlopen(f"http://{address}{path}", timeout=2) as reply:
                    if reply.status != 200:
                        return False
        except OSError:
            return False
        return True

    return check


def _asyncinfer() -> ServerSpec:
    command = [
        str(Path(python()).parent / "asyncinfer"), "serve",
        "--model-repository", str(ROOT / "examples" / "model_repository"),
        "--model-control-mode", "explicit", "--load-model", "simple",
        "--load-model", "custom_identity_int32",
        "--grpc-port", "0", "--http-port", "{port}", "--allow-metrics", "false",
    ]  # fmt: skip
    return ServerSpec("asyncinfer", command, http_ready("simple", "custom_identity_int32"))


def _bare(library: str) -> ServerSpec:
    interpreter = python() if library == "aiohttp" else str(MLSERVER_VENV / "bin" / "python")
    if library != "aiohttp":
        ensure_mlserver()  # its venv has Starlette and uvicorn
    command = [interpreter, str(BENCH / "_bare_http.py"), "--port", "{port}", "--library", library]
    name = "bare" if library == "aiohttp" else "starlette"
    return ServerSpec(name, command, http_ready())


def _mlserver() -> ServerSpec:
    binary = ensure_mlserver()
    command = [
        "env", "MLSERVER_HTTP_PORT={port}", "MLSERVER_GRPC_PORT={port_grpc}",
        "MLSERVER_METRICS_PORT=0", str(binary), "start", str(BENCH / "mlserver_simple"),
    ]  # fmt: skip
    return ServerSpec("mlserver", command, http_ready("simple"), start_timeout=120)


def specs(names: Sequence[str]) -> list[ServerSpec]:
    makers: dict[str, Callable[[], ServerSpec]] = {
        "asyncinfer": _asyncinfer,
        "bare": lambda: _bare("aiohttp"),
        "starlette": lambda: _bare("starlette"),
        "mlserver": _mlserver,
        "triton": lambda: triton_spec("simple"),
    }
    return [makers[name]() for name in names]


def http_address(server: RunningServer) -> str:
    """Triton's HTTP port is its ``{port_http}``; every other server's is ``{port}``."""
    port = server.ports.get("port_http")
    return f"127.0.0.1:{port}" if port else server.address


Samples = dict[str, dict[int, list[dict[str, Any]]]]


def rounds(
    servers: Sequence[RunningServer], args: argparse.Namespace, workload: list[str]
) -> Samples:
    """``args.repeats`` rounds of the load client against every server, order rotated."""
    samples: Samples = {s.name: {c: [] for c in common.levels(args)} for s in servers}
    per_client = len(common.levels(args)) * (args.duration + args.warmup)
    for round_ in range(args.repeats):
        shift = round_ % len(servers)
        for server in [*servers[shift:], *servers[:shift]]:
            command = [
                python(), str(BENCH / "_http_load_client.py"), "--url", http_address(server),
                "--concurrency", args.concurrency, "--duration", str(args.duration),
                "--warmup", str(args.warmup), *workload,
            ]  # fmt: skip
            before = cpu_seconds(server)
            result = run_json(command, timeout=60 + 3 * per_client)
            used = cpu_seconds(server) - before
            sent = sum(level["requests_total"] for level in result["levels"])
            for level in result["levels"]:
                level["server_cpu_us_per_request"] = used / sent * 1e6 if sent else None
                samples[server.name][level["concurrency"]].append(level)
    return samples


def compare(load: dict[str, Any], ours: str, theirs: str) -> dict[str, float | None]:
    return common.ratios(load, ours, theirs) if ours in load and theirs in load else {}


def comparisons(load: dict[str, dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, peer, encodings in (
        ("ratio_vs_bare", "bare", ENCODINGS),
        ("ratio_vs_mlserver", "mlserver", ("json",)),
        ("ratio_vs_triton", "triton", ENCODINGS),
    ):
        by_encoding = {e: compare(load[e], "asyncinfer", peer) for e in encodings}
        if all(by_encoding.values()):
            result[key] = by_encoding
            result[f"{key}_min"] = min(
                (common.minimum(values) or 0.0) for values in by_encoding.values()
            )
    library = {e: compare(load[e], "bare", "starlette") for e in ENCODINGS}
    if all(library.values()):
        result["library_aiohttp_vs_starlette"] = library
    large = compare(load["large"], "asyncinfer", "bare")
    if large:
        result["large_ratio_vs_bare"] = large
        result["large_ratio_vs_bare_min"] = common.minimum(large)
    if all(key in result for key in GOALS):
        result["goals_met"] = all((result[key] or 0) >= goal for key, goal in GOALS.items())
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_arguments(parser, concurrency="1,16,64", repeats=3, duration=1.5)
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    parser.add_argument("--large-concurrency", default="1,16", help="levels of the 4 MiB run")
    args = parser.parse_args()
    common.apply_quick(args)
    started = time.monotonic()
    names = [n for n in args.servers.split(",") if n]
    common.check_servers(names, SERVERS)
    load: dict[str, dict[str, Any]] = {}
    with serving(specs(names), BUILD / "bench-logs" / "infer_http") as running:
        servers = list(running.values())
        for encoding in ENCODINGS:
            takers = [s for s in servers if encoding == "json" or s.name != "mlserver"]
            workload = ["--model", "simple", "--encoding", encoding]
            load[encoding] = common.summarize(rounds(takers, args, workload))
        large_servers = [s for s in servers if s.name in ("asyncinfer", "bare")]
        large_args = argparse.Namespace(**{**vars(args), "concurrency": args.large_concurrency})
        workload = ["--model", "custom_identity_int32", "--encoding", "binary",
                    "--elements", str(LARGE_ELEMENTS)]  # fmt: skip
        load["large"] = common.summarize(rounds(large_servers, large_args, workload))
    result = {
        "bench": "infer_http",
        "quick": args.quick,
        "repeats": args.repeats,
        "duration_s": args.duration,
        "load_client": load,
        "wall_s": round(time.monotonic() - started, 1),
        "goals": GOALS,
        **comparisons(load),
    }
    problems = common.failures(*load.values())
    result["failures"] = problems
    emit(result)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
