"""The servers the inference benchmarks compare, as ServerSpecs: asyncinfer, the bare grpc.aio
baseline and MLServer (installed here, on first use, into its own virtual environment)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from _harness import BENCH, BUILD, ROOT, HarnessError, ServerSpec, python, triton_ready

MLSERVER_VENV = BUILD / "mlserver-venv"
# MLServer 1.7.1 with uvloop 0.21.0: uvloop 0.23 makes its parallel worker crash-loop.
MLSERVER_REQUIREMENTS = ("mlserver==1.7.1", "uvloop==0.21.0")
MODEL_REPOSITORY = ROOT / "examples" / "model_repository"


def bare_spec(*models: str, name: str = "bare") -> ServerSpec:
    """bench/_bare_triton.py: plain protobuf, no framework; the baseline of every ratio."""
    return ServerSpec(
        name=name,
        command=[python(), str(BENCH / "_bare_triton.py"), "--port", "0"],
        ready=triton_ready(*models),
        port_pattern=r"bare_triton listening on \S+:(\d+)",
    )


def floor_spec(*models: str, name: str = "floor") -> ServerSpec:
    """bench/_floor_server.py: grpc.aio answering pre-framed bytes, no other work.

    It runs with the heap settings asyncinfer gives its own processes (asyncinfer.memory.
    host_heap, here through glibc's environment variables), so that asyncinfer's CPU over the
    floor's is the framework's cost alone, not a difference of malloc settings.
    """
    from asyncinfer.memory.host_heap import MMAP_THRESHOLD_BYTES, TRIM_BYTES

    return ServerSpec(
        name=name,
        command=[python(), str(BENCH / "_floor_server.py"), "--port", "0"],
        ready=triton_ready(*models),
        port_pattern=r"floor_server listening on \S+:(\d+)",
        env={
            "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD_BYTES),
            "MALLOC_TRIM_THRESHOLD_": str(TRIM_BYTES),
        },
    )


def asyncinfer_spec(*models: str, name: str = "asyncinfer", workers: int = 1) -> ServerSpec:
    """`asyncinfer serve --model-repository examples/model_repository`, as users start it."""
    if importlib.util.find_spec("asyncinfer.inference") is None:
        raise HarnessError(
            "asyncinfer's inference service (asyncinfer.inference) is not on this branch: "
            "merge the `infer` branch, or leave asyncinfer out of --servers"
        )
    return _serve_spec(name, [str(Path(python()).parent / "asyncinfer"), "serve"], models, workers)


def framework_spec(*models: str, name: str = "framework") -> ServerSpec:
    """bench/_framework_server.py: asyncinfer's gRPC framework around the bare server's
    inference (no data plane), as ``asyncinfer serve`` is started by asyncinfer_spec."""
    return _serve_spec(name, [python(), str(BENCH / "_framework_server.py")], models)


def _serve_spec(
    name: str, program: list[str], models: tuple[str, ...], workers: int = 1
) -> ServerSpec:
    """``program`` with asyncinfer serve's flags for the benchmarks' repository: gRPC only, on a
    free port, no metrics."""
    command = [
        *program, "--model-repository", str(MODEL_REPOSITORY), "--grpc-port", "0",
        "--workers", str(workers), "--allow-http", "false", "--allow-metrics", "false",
    ]  # fmt: skip
    return ServerSpec(
        name=name,
        command=command,
        ready=triton_ready(*models),
        port_pattern=r"asyncinfer: .*serving on \S+:(\d+)",
    )


def _mlserver_stamp() -> Path:
    return MLSERVER_VENV / (".installed-" + "-".join(MLSERVER_REQUIREMENTS).replace("=", ""))


def ensure_mlserver() -> Path:
    """Install MLServer into build/mlserver-venv unless already there; returns its `mlserver`."""
    binary = MLSERVER_VENV / "bin" / "mlserver"
    if _mlserver_stamp().exists() and binary.exists():
        return binary
    print(f"installing {' '.join(MLSERVER_REQUIREMENTS)} into {MLSERVER_VENV}", file=sys.stderr)
    venv_python = MLSERVER_VENV / "bin" / "python"
    if not venv_python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
    done = subprocess.run(
        [str(venv_python), "-m", "pip", "install", "--quiet", *MLSERVER_REQUIREMENTS],
        check=False, timeout=900,
    )  # fmt: skip
    if done.returncode != 0:
        raise HarnessError(
            f"installing MLServer into {MLSERVER_VENV} failed (pip exit {done.returncode}); "
            "see pip's output above, or leave mlserver out of --servers"
        )
    _mlserver_stamp().touch()
    return binary


def mlserver_spec(name: str = "mlserver") -> ServerSpec:
    """MLServer with the defaults users get, serving bench/mlserver_simple (model `simple`).

    Only the ports are set (gRPC chosen here; HTTP and metrics on 0, which MLServer's uvicorn
    binds to a free port) and the host (127.0.0.1, so nothing listens beyond loopback).
    """
    binary = ensure_mlserver()
    command = [
        "env", "MLSERVER_GRPC_PORT={port}", "MLSERVER_HTTP_PORT=0", "MLSERVER_METRICS_PORT=0",
        str(binary), "start", str(BENCH / "mlserver_simple"),
    ]  # fmt: skip
    return ServerSpec(name=name, command=command, ready=triton_ready("simple"), start_timeout=120)
