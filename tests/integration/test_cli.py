"""The `asyncinfer` console script: serve an app; sync, async and siege against it."""

from __future__ import annotations

import json
import subprocess
import sys
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
