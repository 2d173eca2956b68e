"""The README runs as written: its service, proto, client, commands and model repository."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asyncinfer.testing import ServerProcess

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
DEFAULT_ADDRESS = "127.0.0.1:50051"
_TITLED = re.compile(r'^```\w+ title="([^"]+)"\n(.*?)^```$', re.MULTILINE | re.DOTALL)
_COMMANDS = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _files() -> dict[str, str]:
    """Every code block with a title="path" in the README, by path."""
    return {title: body for title, body in _TITLED.findall(README)}


def _command(start: str, *, address: str, replaces: str | tuple[str, ...]) -> list[str]:
    """The README's shell command that starts with ``start``, run through this Python, with
    each address it shows (``replaces``) replaced by ``address``."""
    for block in _COMMANDS.findall(README):
        for line in block.splitlines():
            if line.startswith(start + " "):
                for shown in (replaces,) if isinstance(replaces, str) else replaces:
                    line = line.replace(shown, address)
                argv = shlex.split(line, comments=True)
                return [sys.executable, "-m", "asyncinfer.cli", *argv[1:]]
    raise AssertionError(f"the README shows no `{start} ...` command")


def _written(tmp_path: Path, *names: str) -> None:
    files = _files()
    for name in names:
        assert name in files, f"the README has no block titled {name!r}"
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(files[name])


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_the_service_is_forty_lines_and_the_readme_at_most_150() -> None:
    assert len(_files()["service.py"].splitlines()) <= 42
    assert len(README.splitlines()) <= 150


def test_the_readme_service_answers_the_readme_clients(tmp_path: Path) -> None:
    _written(tmp_path, "hello.proto", "service.py", "client.py")
    serve = [sys.executable, "-m", "asyncinfer.cli", "serve", "--app", "service:build"]
    with ServerProcess([*serve, "--port", "0"], cwd=str(tmp_path)) as server:
        client = (tmp_path / "client.py").read_text().replace(DEFAULT_ADDRESS, server.address)
        (tmp_path / "client.py").write_text(client)
        done = _run([sys.executable, "client.py"], tmp_path)
        print(f"$ python client.py\n{done.stdout}", end="")
        assert done.returncode == 0, done.stderr
        assert done.stdout == "hello world (#1)\n"
        sync = _command("asyncinfer sync", address=server.address, replaces=DEFAULT_ADDRESS)
        done = _run(sync, tmp_path)
        print(f"$ asyncinfer sync {server.address} ...\n{done.stdout}", end="")
        assert done.returncode == 0, done.stderr
        assert "[sync] 1000/1000 ok" in done.stdout
        rpc = sync.index("/hello.Greeter/SayHello")
        empty = [*sync[: rpc + 1], "--request", "{}", "--count", "1"]
        assert "0/1 ok" in _run(empty, tmp_path).stdout  # the InvalidArgument path fails it


def test_the_readme_service_type_checks_with_its_stubs(tmp_path: Path) -> None:
    _written(tmp_path, "hello.proto", "service.py", "client.py")
    stubs = [sys.executable, "-m", "asyncinfer.protos", "stubs", "--out", "typings", "hello.proto"]
    assert _run(stubs, tmp_path).returncode == 0
    mypy = [
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--cache-dir",
        str(ROOT / "build/mypy-readme"),
    ]
    env = {**os.environ, "MYPYPATH": str(tmp_path / "typings")}
    done = subprocess.run(
        [*mypy, "service.py", "client.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout
    bad = (tmp_path / "service.py").read_text().replace("message=f", "messages=f")
    (tmp_path / "service.py").write_text(bad)
    done = subprocess.run(
        [*mypy, "service.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert 'Unexpected keyword argument "messages" for "HelloReply"' in done.stdout


def test_the_readme_model_repository_serves_tritonclient(tmp_path: Path) -> None:
    grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed")
    _written(tmp_path, "models/double/config.pbtxt", "models/double/1/model.py")
    serve = _command(
        "asyncinfer serve --model-repository", address="0", replaces=("8001", "8000", "8002")
    )
    with ServerProcess(serve, cwd=str(tmp_path)) as server:
        client = grpcclient.InferenceServerClient(server.address)
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        tensor = grpcclient.InferInput("X", [2, 4], "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer("double", [tensor])
        np.testing.assert_array_equal(result.as_numpy("Y"), x * 2)
        client.close()
