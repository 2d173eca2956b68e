"""The wheel and the container recipe: `python -m build` makes a wheel with the protos compiled
inside; the container's install script puts it into a fresh prefix; that prefix serves a model
with the image's own ENTRYPOINT and CMD, and answers the image's HEALTHCHECK.

No container engine runs here, so the Dockerfile itself is checked for its shape (stages,
non-root user, ports, the scripts it calls, the files it copies); its RUN steps are the two
scripts this module runs for real.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tomllib
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from dockerfile_parse import DockerfileParser

from asyncinfer.cli import _parser
from asyncinfer.testing import ServerProcess

ROOT = Path(__file__).resolve().parents[3]
CONTAINER = ROOT / "deploy" / "container"
DOCKERFILE = CONTAINER / "Dockerfile"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

pytestmark = pytest.mark.timeout(300)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    prefix: Path


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False, env=env)
    assert done.returncode == 0, f"{argv[:2]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel built from this checkout, installed by the container's script into a fresh
    prefix (no extras: the model served below is a Python model)."""
    work = tmp_path_factory.mktemp("package")
    env = {**os.environ, "PYTHON": sys.executable}
    built = _run(["bash", str(CONTAINER / "build-wheel.sh"), str(work / "dist")], env=env)
    wheel = Path(built.stdout.strip().splitlines()[-1])
    prefix = work / "prefix"
    done = _run(
        ["bash", str(CONTAINER / "install.sh"), "--wheel", str(wheel), "--prefix", str(prefix)],
        env=env,
    )
    assert f"asyncinfer {PROJECT['version']}" in done.stdout
    return Installed(wheel, prefix)


def test_the_wheel_holds_the_compiled_protos_the_script_and_the_extras(
    installed: Installed,
) -> None:
    assert installed.wheel.name == f"asyncinfer-{PROJECT['version']}-py3-none-any.whl"
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        info = f"asyncinfer-{PROJECT['version']}.dist-info"
        metadata = wheel.read(f"{info}/METADATA").decode()
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    for module in ("grpc_service_pb2.py", "grpc_service_pb2_grpc.py", "model_config_pb2.pyi"):
        assert f"asyncinfer/pb/inference/{module}" in names
    assert {
        "asyncinfer/pb/tensor_pb2.py",
        "asyncinfer/protos/__init__.py",
        "asyncinfer/py.typed",
    } <= names
    # Only the library's own protos are compiled in; examples load theirs at run time.
    assert not any(name.endswith(("ping_pb2.py", "chain_pb2.py")) for name in names)
    assert not any(name.startswith(("tests/", "examples/", "bench/")) for name in names)
    assert "asyncinfer = asyncinfer.cli:main" in entry_points
    assert f"Version: {PROJECT['version']}" in metadata
    for extra in PROJECT["optional-dependencies"]:
        assert f"Provides-Extra: {extra}" in metadata


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "simple").symlink_to(ROOT / "examples" / "model_repository" / "simple")
    return tmp_path / "models"


def _instructions(name: str, stage: str = "runtime") -> list[str]:
    """The values of instruction ``name`` in one stage of the Dockerfile."""
    values, current = [], ""
    for item in DockerfileParser(str(DOCKERFILE)).structure:
        if item["instruction"] == "FROM":
            current = item["value"].split()[-1]
        elif item["instruction"] == name and current == stage:
            values.append(item["value"])
    return values


def _image_command(repository: Path, grpc_port: int, metrics_port: int) -> list[str]:
    """ENTRYPOINT + CMD of the runtime stage, pointed at a local repository and free ports."""
    command = json.loads(_instructions("ENTRYPOINT")[-1]) + json.loads(_instructions("CMD")[-1])
    swap = {"/models": str(repository), "0.0.0.0": "127.0.0.1", "8001": str(grpc_port),
            "8002": str(metrics_port), "8000": str(_free_port())}  # fmt: skip
    return [swap.get(part, part) for part in command]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(installed: Installed, repository: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    """The fresh prefix running the image's command, outside the source tree."""
    command = _image_command(repository, _free_port(), _free_port())
    assert command[:2] == ["asyncinfer", "serve"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{installed.prefix / 'bin'}:{env['PATH']}"
    argv = [str(installed.prefix / "bin" / command[0]), *command[1:]]
    with ServerProcess(argv, env=env, cwd=str(tmp_path), timeout=60) as process:
        yield process


def test_the_fresh_prefix_serves_a_model_with_the_images_command(
    installed: Installed, served: ServerProcess
) -> None:
    probe = "import asyncinfer; print(asyncinfer.__file__, asyncinfer.__version__)"
    where = _run([str(installed.prefix / "bin" / "python"), "-c", probe])
    location, version = where.stdout.split()
    assert Path(location).is_relative_to(installed.prefix) and version == PROJECT["version"]

    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    with grpcclient.InferenceServerClient(served.address) as client:
        inputs = [grpcclient.InferInput(n, [1, 16], "INT32") for n in ("INPUT0", "INPUT1")]
        for tensor in inputs:
            tensor.set_data_from_numpy(a)
        result = client.infer("simple", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a * 2)
    with urllib.request.urlopen(served.metrics_url, timeout=10) as reply:
        metrics = reply.read().decode()
    assert 'nv_inference_request_success{model="simple",version="1"} 1.0' in metrics


def test_the_images_healthcheck_passes_against_it(
    installed: Installed, served: ServerProcess
) -> None:
    (healthcheck,) = _instructions("HEALTHCHECK")
    command = json.loads(healthcheck.split("CMD", 1)[1])
    port = served.address.rpartition(":")[2]
    argv = [str(installed.prefix / "bin" / command[0]),
            *(part.replace(":8001", f":{port}") for part in command[1:])]  # fmt: skip
    done = _run(argv)
    assert "SERVING" in done.stdout
    assert served.stop() == 0  # SIGTERM: a graceful drain, exit code 0
    stopped = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert stopped.returncode == 1 and "UNREACHABLE" in stopped.stdout


def test_install_refuses_a_prefix_that_holds_an_environment(installed: Installed) -> None:
    done = subprocess.run(
        ["bash", str(CONTAINER / "install.sh"), "--wheel", str(installed.wheel),
         "--prefix", str(installed.prefix)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1 and "give a fresh prefix" in done.stderr


def test_the_dockerfile_builds_a_wheel_then_runs_it_as_a_non_root_user() -> None:
    parser = DockerfileParser(str(DOCKERFILE))
    stages = [i["value"].split()[-1] for i in parser.structure if i["instruction"] == "FROM"]
    assert stages == ["build", "runtime", "examples"]
    runs = " ".join(_instructions("RUN", "build") + _instructions("RUN", "runtime"))
    assert "deploy/container/build-wheel.sh" in runs and "asyncinfer-install" in runs
    assert "from=build" in runs  # the runtime stage takes only the wheel from the build stage
    (user,) = _instructions("USER")
    assert user.split(":")[0] not in ("0", "root")
    assert _instructions("EXPOSE") == ["8000 8001 8002"]
    (healthcheck,) = _instructions("HEALTHCHECK")
    assert json.loads(healthcheck.split("CMD", 1)[1])[:2] == ["asyncinfer", "health"]
    # The image's command is one the console script accepts, flag for flag.
    command = json.loads(_instructions("ENTRYPOINT")[-1]) + json.loads(_instructions("CMD")[-1])
    args = _parser().parse_args(command[1:])
    assert (args.grpc_port, args.http_port, args.metrics_port) == (8001, 8000, 8002)
    assert args.host == "0.0.0.0"


def test_every_file_the_dockerfile_copies_is_in_the_build_context() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for item in DockerfileParser(str(DOCKERFILE)).structure:
        if item["instruction"] != "COPY" or "--from=" in item["value"]:
            continue
        *sources, _destination = [p for p in item["value"].split() if not p.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert not any(Path(source).match(pattern) for pattern in ignored), source
