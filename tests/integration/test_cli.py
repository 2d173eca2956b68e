"""The `asyncinfer` console script: serve an app; sync, async and siege against it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from asyncinfer.testing import ServerProcess

ROOT = Path(__file__).parents[2]
CLI = [sys.executable, "-m", "asyncinfer.cli"]
PING = "/asyncinfer.examples.Ping/Ping"


@pytest.fixture(scope="module")
def address() -> object:
    argv = [*CLI, "serve", "--app", "server:build", "--port", "0", "--workers", "2"]
    with ServerProcess(argv, workers=2, cwd=str(ROOT / "examples" / "01_ping")) as proc:
        yield proc.address


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, check=False)


def test_sync_prints_calls_per_second(address: str) -> None:
    done = _cli("sync", address, PING, "--request", '{"payload": "aGk="}', "--count", "50")
    assert done.returncode == 0, done.stderr
    assert "[sync] 50/50 ok" in done.stdout and "calls/s" in done.stdout


def test_async_with_cap(address: str) -> None:
    done = _cli(
        "async", address, PING, "--concurrency", "8", "--max-in-flight", "4", "--count", "200"
    )
    assert done.returncode == 0, done.stderr
    assert "[async c=8] 200/200 ok" in done.stdout


def test_siege_reports_progress_and_writes_json(address: str, tmp_path: Path) -> None:
    out = tmp_path / "siege.json"
    done = _cli(
        "siege",
        address,
        PING,
        "--rate",
        "200",
        "--shape",
        "cyclic",
        "--rate-end",
        "400",
        "--duration",
        "1.5",
        "--json",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stdout.splitlines() if line.startswith("[siege] t=")]
    assert len(progress) >= 2 and "p50=" in progress[0] and "in_flight=" in progress[0]
    result = json.loads(out.read_text())
    assert result["summary"]["ok"] > 0 and result["summary"]["failed"] == 0
    assert result["timeline"]


def test_streaming_rpcs_from_json(address: str) -> None:
    done = _cli(
        "sync",
        address,
        "asyncinfer.examples.Ping/Collect",
        "--request",
        '[{"payload": "aGk="}, {}]',
        "--count",
        "3",
    )
    assert done.returncode == 0 and "3/3 ok" in done.stdout, done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("/asyncinfer.examples.Ping/Nope",),
            "asyncinfer.examples.Ping has no method Nope; its methods are",
        ),
        ((PING, "--request", "{not json"), "--request is not JSON"),
        ((PING, "--request", '{"nope": 1}'), "does not fit asyncinfer.examples.PingRequest"),
    ],
)
def test_bad_arguments_say_what_is_wrong(address: str, args: tuple[str, ...], message: str) -> None:
    done = _cli("sync", address, *args, "--count", "1")
    assert done.returncode == 2 and message in done.stderr


def test_bad_app_spec() -> None:
    done = _cli("serve", "--app", "no_such_module:build")
    assert done.returncode == 2 and "cannot load --app no_such_module:build" in done.stderr


def test_version_is_the_one_pyproject_gives() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    done = _cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"asyncinfer {project['version']}"


def test_health_exits_zero_only_when_serving(address: str) -> None:
    serving = _cli("health", address)
    assert serving.returncode == 0 and serving.stdout.strip() == f"{address} (server): SERVING"
    named = _cli("health", address, "--service", "asyncinfer.examples.Ping")
    assert named.returncode == 0 and "SERVING" in named.stdout
    unknown = _cli("health", address, "--service", "no.Such")
    assert unknown.returncode == 1 and "SERVICE_UNKNOWN" in unknown.stdout
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    nobody = f"127.0.0.1:{closed.getsockname()[1]}"  # bound, never listening
    try:
        gone = _cli("health", nobody, "--timeout", "1")
    finally:
        closed.close()
    assert gone.returncode == 1 and "UNREACHABLE (UNAVAILABLE)" in gone.stdout


def test_load_clients_take_several_targets(address: str) -> None:
    done = _cli("sync", f"{address},{address}", PING, "--count", "20")
    assert done.returncode == 0 and "[sync] 20/20 ok" in done.stdout, done.stderr
    named = _cli("sync", f"host-a:1,{address}", PING, "--count", "1")
    assert named.returncode == 2 and "dns:///host-a:1" in named.stderr
