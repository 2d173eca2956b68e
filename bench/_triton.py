"""Real Triton as a benchmark peer: tritonserver 2.51 from the `nvidia-pytriton` wheel, serving a
plain model repository of `TritonPythonModel` models through its python backend.

The wheel is installed on first use into build/triton-venv. Its python backend is copied into
build/triton-backends with the stub built for this Python, because tritonserver looks for the
stub beside the backend. bench/triton_models holds the Triton-API model.py files for the models
the benchmarks drive (the same arithmetic as examples/model_repository's).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from _harness import BENCH, BUILD, HarnessError, ServerSpec, triton_ready

TRITON_VENV = BUILD / "triton-venv"
TRITON_REQUIREMENT = "nvidia-pytriton==0.7.0"
TRITON_BACKENDS = BUILD / "triton-backends"
TRITON_MODELS = BENCH / "triton_models"


def _site_packages() -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return TRITON_VENV / "lib" / version / "site-packages"


def ensure_triton() -> Path:
    """Install the wheel unless already there, and prepare the backend folder; returns the
    tritonserver binary."""
    stamp = TRITON_VENV / (".installed-" + TRITON_REQUIREMENT.replace("=", ""))
    tritonserver = _site_packages() / "pytriton" / "tritonserver"
    binary = tritonserver / "bin" / "tritonserver"
    if not (stamp.exists() and binary.exists()):
        print(f"installing {TRITON_REQUIREMENT} into {TRITON_VENV}", file=sys.stderr)
        venv_python = TRITON_VENV / "bin" / "python"
        if not venv_python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(TRITON_VENV)], check=True)
        done = subprocess.run(
            [str(venv_python), "-m", "pip", "install", "--quiet", TRITON_REQUIREMENT],
            check=False, timeout=900,
        )  # fmt: skip
        if done.returncode != 0 or not binary.exists():
            raise HarnessError(
                f"installing {TRITON_REQUIREMENT} into {TRITON_VENV} failed (pip exit "
                f"{done.returncode}); see pip's output above, or leave triton out of --servers"
            )
        stamp.touch()
    backend = TRITON_BACKENDS / "python"
    stub = (
        tritonserver / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}"
    )
    if not (backend / "triton_python_backend_stub").exists():
        shutil.rmtree(TRITON_BACKENDS, ignore_errors=True)
        shutil.copytree(tritonserver / "backends" / "python", backend)
        shutil.copy2(stub / "triton_python_backend_stub", backend / "triton_python_backend_stub")
    return binary


def triton_env() -> dict[str, str]:
    """libpython for the stub, the wheel's bundled libraries, and the venv's bin on PATH."""
    libs = [str(sysconfig.get_config_var("LIBDIR")), str(_site_packages() / "nvidia_pytriton.libs")]
    if os.environ.get("LD_LIBRARY_PATH"):
        libs.append(os.environ["LD_LIBRARY_PATH"])
    path = f"{TRITON_VENV / 'bin'}:{os.environ.get('PATH', '')}"
    return {"LD_LIBRARY_PATH": ":".join(libs), "PATH": path}


def triton_spec(*models: str, repository: Path = TRITON_MODELS, name: str = "triton") -> ServerSpec:
    """tritonserver on 127.0.0.1: gRPC on ``{port}``, HTTP on ``{port_http}`` (the running
    server's ``ports["port_http"]``), metrics off, only ``models`` loaded."""
    binary = ensure_triton()
    command = [
        str(binary), "--model-repository", str(repository),
        "--backend-directory", str(TRITON_BACKENDS),
        "--model-control-mode", "explicit", *(f"--load-model={m}" for m in models),
        "--grpc-address", "127.0.0.1", "--grpc-port", "{port}",
        "--http-address", "127.0.0.1", "--http-port", "{port_http}",
        "--allow-metrics", "false", "--log-verbose", "0",
    ]  # fmt: skip
    return ServerSpec(
        name=name, command=command, ready=triton_ready(*models), env=triton_env(),
        start_timeout=120,
    )  # fmt: skip
