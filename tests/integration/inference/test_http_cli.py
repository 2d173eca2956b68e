"""`asyncinfer serve --model-repository` with tritonserver's ports and flags: HTTP beside gRPC
(one process and two workers sharing the port), the defaults 8000/8001/8002, --allow-*,
--*-address, --exit-timeout-secs, the --log-* flags, and tritonserver flags that asyncinfer
does not have, each refused by name; --allow-grpc false serves HTTP alone."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest

from asyncinfer import ConfigError, Server, UsageError
from asyncinfer.cli import _inference_factory, _parser
from asyncinfer.inference import build_server
from asyncinfer.inference.http import HttpFrontEnd
from asyncinfer.testing import ServerProcess
from tests.services import Ping, TrackedResources

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


def _listening_ports(pid: int) -> set[int]:
    return {
        c.laddr.port
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


def test_http_only_serves_no_grpc_port() -> None:
    argv = [
        *CLI, "serve", "--model-repository", str(REPOSITORY), "--allow-grpc", "false",
        "--http-port", "0", "--allow-metrics", "false",
    ]  # fmt: skip
    with ServerProcess(argv) as proc:
        assert proc.http_url == f"http://{proc.address}"  # the ready line names the HTTP port
        assert _infer(proc.http_url) == [2 * i for i in range(16)]
        assert _get(f"{proc.http_url}/v2/health/ready")[0] == 200
        (pid,) = proc.worker_pids.values()
        assert _listening_ports(pid) == {int(proc.address.rpartition(":")[2])}


def _health(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [*CLI, "health", "--timeout", "5", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_health_asks_an_http_only_server_over_http() -> None:
    argv = [
        *CLI, "serve", "--model-repository", str(REPOSITORY), "--allow-grpc", "false",
        "--http-port", "0", "--allow-metrics", "false",
    ]  # fmt: skip
    with ServerProcess(argv) as proc:
        url = proc.http_url
        serving = _health(url)
        assert serving.returncode == 0, serving.stderr
        assert serving.stdout.strip() == f"{url} (server): SERVING"
        model = _health(url, "--service", "simple")
        assert model.returncode == 0 and model.stdout.strip() == f"{url} simple: SERVING"
        unknown = _health(url, "--service", "no_such_model")
        assert unknown.returncode == 1 and "no_such_model: NOT_SERVING (HTTP 400)" in unknown.stdout
        grpc = _health(proc.address)  # nothing serves gRPC there
        assert grpc.returncode == 1 and "UNREACHABLE" in grpc.stdout
    closed = _free_port()
    gone = _health(f"http://127.0.0.1:{closed}")
    assert gone.returncode == 1 and "UNREACHABLE (" in gone.stdout
    bad = _health("ftp://127.0.0.1:1")
    assert bad.returncode == 2
    assert "a health target is HOST:PORT (gRPC) or http[s]://HOST:PORT (HTTP)" in bad.stderr


def test_http_only_with_two_workers() -> None:
    port = _free_port()
    argv = [
        *CLI, "serve", "--model-repository", str(REPOSITORY), "--allow-grpc", "false",
        "--workers", "2", "--http-port", str(port), "--allow-metrics", "false",
    ]  # fmt: skip
    with ServerProcess(argv, workers=2, timeout=60) as proc:
        assert proc.address == f"127.0.0.1:{port}"
        for _ in range(8):
            assert _infer(f"http://127.0.0.1:{port}") == [2 * i for i in range(16)]
        for pid in proc.worker_pids.values():
            assert _listening_ports(pid) == {port}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--allow-grpc", "false", "--allow-http", "false"], "nothing to serve"),
        (["--allow-grpc", "false", "--grpc-port", "5"], "--grpc-port serves gRPC, which --allow"),
        (["--allow-http=false", "--http-address", "::1"], "--http-address serves HTTP, which"),
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


async def test_http_only_server_in_process() -> None:
    server = build_server(REPOSITORY, grpc_port=None, http_port=0)
    assert not server.config.serve_grpc
    await server.start()
    try:
        (front_end,) = server.front_ends
        assert front_end.url == f"http://{server.address}"
        with pytest.raises(UsageError, match="serves no gRPC port"):
            server.port  # noqa: B018
        waiting = asyncio.create_task(server.wait_for_termination())
        await asyncio.sleep(0)
        assert not waiting.done()
    finally:
        await server.stop()
    await asyncio.wait_for(waiting, 10)


async def test_serving_nothing_is_refused() -> None:
    with pytest.raises(ConfigError, match="nothing to serve"):
        build_server(REPOSITORY, grpc_port=None)
    server = Server(serve_grpc=False)
    server.add_service(TrackedResources(), Ping)
    with pytest.raises(ConfigError, match="serve_grpc=False leaves nothing to serve"):
        await server.start()
