"""`asyncinfer serve --model-repository` with tritonserver's ports and flags: HTTP beside gRPC
(one process and two workers sharing the port), the defaults 8000/8001/8002, --allow-*,
--*-address, --exit-timeout-secs, the --log-* flags, and tritonserver flags that asyncinfer
does not have, each refused by name."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from asyncinfer.cli import _inference_factory, _parser
from asyncinfer.inference.http import HttpFrontEnd
from asyncinfer.testing import ServerProcess

from .inference_servers import REPOSITORY

CLI = [sys.executable, "-m", "asyncinfer.cli"]
SERVE = [*CLI, "serve", "--model-repository", str(REPOSITORY), "--grpc-port", "0"]
SIMPLE = {
    "inputs": [
        {"name": name, "datatype": "INT32", "shape": [1, 16], "data": list(range(16))}
        for name in ("INPUT0", "INPUT1")
    ]
}


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.status, reply.read()


def _infer(base: str) -> list[int]:
    request = urllib.request.Request(
        f"{base}/v2/models/simple/infer", data=json.dumps(SIMPLE).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        outputs: list[int] = json.loads(reply.read())["outputs"][0]["data"]
        return outputs


def test_defaults_are_tritonservers_ports() -> None:
    args = _parser().parse_args(["serve", "--model-repository", str(REPOSITORY)])
    server = _inference_factory(args)()
    assert server.config.port == 8001 and server.config.metrics_port == 8002
    (front_end,) = server.front_ends
    assert isinstance(front_end, HttpFrontEnd) and front_end.requested_port == 8000
    off = _parser().parse_args(
        ["serve", "--model-repository", str(REPOSITORY), "--allow-http", "false",
         "--allow-metrics=false"]
    )  # fmt: skip
    server = _inference_factory(off)()
    assert server.front_ends == () and server.config.metrics_port is None


def test_http_beside_grpc_with_log_flags(tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"
    argv = [
        *SERVE, "--http-port", "0", "--metrics-port", "0", "--http-address", "127.0.0.1",
        "--exit-timeout-secs", "2", "--log-file", str(log_file), "--log-info", "false",
    ]  # fmt: skip
    with ServerProcess(argv) as proc:
        assert proc.http_url.startswith("http://127.0.0.1:")
        assert _get(f"{proc.http_url}/v2/health/ready")[0] == 200
        assert _infer(proc.http_url) == [2 * i for i in range(16)]
        settings = json.loads(_get(f"{proc.http_url}/v2/logging")[1])
        assert settings["log_file"] == str(log_file) and settings["log_info"] is False
        assert settings["log_warning"] is True
        assert proc.metrics_url and _get(proc.metrics_url)[0] == 200
    # --log-info false: the server's info records (its "serving" line among them) are dropped.
    assert "serving" not in log_file.read_text()


def test_log_file_gets_info_records(tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"
    argv = [*SERVE, "--http-port", "0", "--allow-metrics", "false", "--log-file", str(log_file)]
    with ServerProcess(argv) as proc:
        assert _get(f"{proc.http_url}/v2/health/live")[0] == 200
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert any(line["msg"].startswith("HTTP on http://127.0.0.1:") for line in lines)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_workers_share_the_http_port() -> None:
    port = _free_port()
    argv = [*SERVE, "--workers", "2", "--http-port", str(port), "--allow-metrics", "false"]
    with ServerProcess(argv, workers=2, timeout=60):
        for _ in range(8):  # fresh connections, spread over both workers by the kernel
            assert _infer(f"http://127.0.0.1:{port}") == [2 * i for i in range(16)]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--allow-grpc", "false"], "--allow-grpc false is not supported"),
        (["--backend-directory", "/opt/x"], "--backend-directory: tritonserver flag(s) not supp"),
        (["--http-thread-count", "4", "--id", "x"], "--http-thread-count, --id: tritonserver"),
        (["--http-port", "0", "--workers", "2"], "http_port 0 with workers > 1"),
        (["--http-port", "70000"], "http_port must be 0..65535"),
        (["--grace", "1", "--exit-timeout-secs", "2"], "give --exit-timeout-secs or --grace"),
        (["--log-info", "maybe"], "expected true or false"),
    ],
)
def test_flag_errors(flags: list[str], message: str) -> None:
    done = subprocess.run(
        [*CLI, "serve", "--model-repository", str(REPOSITORY), *flags],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert message in done.stderr


def test_app_mode_refuses_inference_only_flags() -> None:
    done = subprocess.run(
        [*CLI, "serve", "--app", "m:f", "--http-port", "8000"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "--http-port needs --model-repository" in done.stderr


def test_siege_and_async_drive_an_http_endpoint(http_url: str, tmp_path: Path) -> None:
    report = tmp_path / "siege.json"
    common = ["http://" + http_url, "/v2/models/simple/infer", "--request", json.dumps(SIMPLE),
              "--duration", "1"]  # fmt: skip
    done = subprocess.run(
        [*CLI, "siege", *common, "--rate", "100", "--json", str(report)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(report.read_text())["summary"]
    assert summary["failed"] == 0 and summary["ok"] > 0
    done = subprocess.run(
        [*CLI, "async", *common, "--concurrency", "4", "--count", "20"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "20/20 ok" in done.stdout, done.stdout
    bad = subprocess.run(
        [*CLI, "async", "http://" + http_url, "/v2/models/nope/infer", "--request", "{}",
         "--count", "3", "--json", str(report)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 0
    assert json.loads(report.read_text())["failed"] == 3
