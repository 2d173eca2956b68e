"""Measurement machinery shared by the benchmarks: servers and clients as subprocesses, medians,
and the closing JSON line.

A server is described by a ServerSpec: a command and a readiness check. Its gRPC port is either
read from its output (``port_pattern``, for servers that bind port 0 and print the port) or
chosen here just before the start (``{port}`` in the command; any other ``{port_*}`` field gets
its own free port, for servers that also open HTTP or metrics ports). Servers write to a log
file, never to a pipe, so a chatty server cannot block on a full pipe while we measure.

A load client is any command whose last stdout line is one JSON object (``run_json``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import statistics
import string
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BUILD = ROOT / "build"
LOCALHOST = "127.0.0.1"

ReadyCheck = Callable[[str], bool]


class HarnessError(RuntimeError):
    """A server did not start, a client failed, or a result could not be read."""


@dataclasses.dataclass(frozen=True)
class ServerSpec:
    name: str
    command: Sequence[str]
    ready: ReadyCheck
    port_pattern: str | None = None
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    cwd: Path | None = None
    start_timeout: float = 90.0


@dataclasses.dataclass
class RunningServer:
    spec: ServerSpec
    process: subprocess.Popen[bytes]
    address: str
    log_path: Path
    # Every port chosen here for the command's ``{port...}`` fields (``port_http``, ...).
    ports: Mapping[str, int] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server's process group, SIGKILL it after ``timeout`` seconds."""
        stop_process(self.process, timeout)


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A port free right now on 127.0.0.1 (for servers that cannot report a bound port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def port_fields(command: Sequence[str]) -> set[str]:
    """The ``{port...}`` fields named in a command template."""
    fields = set()
    for part in command:
        for _, field, _, _ in string.Formatter().parse(part):
            if field is not None and field.startswith("port"):
                fields.add(field)
    return fields


def fill_ports(command: Sequence[str]) -> tuple[list[str], dict[str, int]]:
    ports = {field: free_port() for field in sorted(port_fields(command))}
    return [part.format(**ports) for part in command], ports


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    # Servers run in their own session so that worker processes they fork die with them.
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)


def _wait_for_port(process: subprocess.Popen[bytes], log: Path, pattern: str, until: float) -> int:
    regex = re.compile(pattern)
    while time.monotonic() < until:
        match = regex.search(log.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise HarnessError(f"no line matching {pattern!r} in the server's output:\n{tail(log)}")


def _wait_ready(server: RunningServer, until: float) -> None:
    while time.monotonic() < until:
        if server.process.poll() is not None:
            raise HarnessError(
                f"{server.name} exited with {server.process.returncode} during start-up:\n"
                f"{server.log_tail()}"
            )
        if server.spec.ready(server.address):
            return
        time.sleep(0.1)
    raise HarnessError(
        f"{server.name} was not ready within its start timeout:\n{server.log_tail()}"
    )


def start_server(spec: ServerSpec, log_dir: Path) -> RunningServer:
    """Start ``spec``'s command and return once its readiness check passes."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{spec.name}.log"
    command, ports = fill_ports(spec.command)
    if spec.port_pattern is None and "port" not in ports:
        raise HarnessError(f"{spec.name}: give a port_pattern or a {{port}} field in the command")
    env = {**os.environ, **spec.env}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=spec.cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    until = time.monotonic() + spec.start_timeout
    try:
        port = ports.get("port") or _wait_for_port(
            process, log_path, spec.port_pattern or "", until
        )
        server = RunningServer(spec, process, f"{LOCALHOST}:{port}", log_path, ports)
        _wait_ready(server, until)
    except BaseException:
        stop_process(process)
        raise
    return server


@contextlib.contextmanager
def serving(specs: Sequence[ServerSpec], log_dir: Path) -> Iterator[dict[str, RunningServer]]:
    """Start every server (in order), yield them by name, stop them all on the way out."""
    with contextlib.ExitStack() as stack:
        running = {}
        for spec in specs:
            server = start_server(spec, log_dir)
            stack.callback(server.stop)
            running[spec.name] = server
        yield running


def cpu_seconds(server: RunningServer) -> float:
    """CPU time (user + system) the server's process and its children have used so far."""
    import psutil

    try:
        root = psutil.Process(server.process.pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def run_json(command: Sequence[str], timeout: float, env: Mapping[str, str] | None = None) -> Any:
    """Run a client process; its last non-empty stdout line, parsed as JSON."""
    try:
        done = subprocess.run(
            list(command), capture_output=True, timeout=timeout, check=False,
            env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"{command[:3]}... ran past {timeout} s") from exc
    stdout = done.stdout.decode(errors="replace")
    stderr = done.stderr.decode(errors="replace")
    lines = [line for line in stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        raise HarnessError(
            f"{command[:3]}... exited with {done.returncode}:\n{stderr[-2000:]}{stdout[-1000:]}"
        )
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise HarnessError(f"last line of {command[:3]}... is not JSON: {lines[-1]!r}") from exc


def median_of(samples: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, float | None]:
    """The median of each key over the samples that have a number for it."""
    result: dict[str, float | None] = {}
    for key in keys:
        values = [s[key] for s in samples if isinstance(s.get(key), int | float)]
        result[key] = statistics.median(values) if values else None
    return result


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def emit(result: Mapping[str, Any], name: str | None = None) -> None:
    """Print the benchmark's result as its last stdout line: one JSON object; and write it to
    build/bench/NAME.json with a plot of it beside, NAME.png (NAME: the script's name)."""
    stem = name or Path(sys.argv[0]).stem
    out = BUILD / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    plot = plot_result(result, out / f"{stem}.png", title=stem)
    print(f"plot: {plot}", flush=True)
    print(json.dumps(result, sort_keys=True), flush=True)


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    else:
        yield path, value


def _curves(result: Mapping[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """(throughput, p99 ms) points per server: every mapping holding both, named by the
    nearest key above it that is not a concurrency level (a number)."""
    curves: dict[str, list[tuple[float, float]]] = {}

    def visit(value: Any, path: tuple[str, ...]) -> None:
        if not isinstance(value, Mapping):
            return
        throughput, p99 = value.get("throughput"), value.get("p99_ms")
        if isinstance(throughput, int | float) and isinstance(p99, int | float):
            names = [key for key in path if not re.fullmatch(r"c?\d+", key)]
            label = ".".join(names) or "result"
            curves.setdefault(label, []).append((float(throughput), float(p99)))
            return
        for child_key, child in value.items():
            visit(child, (*path, str(child_key)))

    visit(result, ())
    return curves


def _is_ratio(key: str) -> bool:
    """A measured ratio's key: ``ratio``, ``..._ratio...`` or ``x_vs_y``; not goals."""
    if key.startswith("goals."):
        return False
    last = key.rsplit(".", 1)[-1]
    return bool(re.search(r"(^|_)ratio(_|$)", last)) or "_vs_" in last


def plot_result(result: Mapping[str, Any], path: Path, *, title: str) -> Path:
    """A PNG of a benchmark's result: bars of every ratio it reports and, when it has servers'
    throughput and p99 latency, latency against throughput per server (matplotlib, `dev`)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    ratios = [
        (key, float(value))
        for key, value in _leaves(result)
        if _is_ratio(key)
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    curves = _curves(result)
    panels = 1 + bool(curves)
    figure, axes = plt.subplots(1, panels, figsize=(7 * panels, 0.4 * len(ratios) + 2.5))
    axes = list(axes) if panels > 1 else [axes]
    bars = axes[0]
    if ratios:
        bars.barh([key for key, _ in ratios], [value for _, value in ratios], color="tab:blue")
        bars.axvline(1.0, color="grey", linewidth=0.8)
        bars.invert_yaxis()
        bars.set_xlabel("ratio")
    else:
        bars.text(0.5, 0.5, "no ratios reported", ha="center", va="center")
    bars.set_title(f"{title}: ratios")
    if curves:
        lines = axes[1]
        for server, points in sorted(curves.items()):
            points.sort()  # by throughput, so a server's levels read as one curve
            lines.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=server)
        lines.set_xlabel("throughput (calls/s)")
        lines.set_ylabel("p99 latency (ms)")
        lines.set_title(f"{title}: latency against throughput")
        lines.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def python() -> str:
    """The interpreter of the project's environment (the one running the benchmark)."""
    return sys.executable


# Readiness checks ---------------------------------------------------------------------------


def triton_ready(*models: str) -> ReadyCheck:
    """Ready when the server answers ServerReady and ModelReady(model) with true."""

    def check(address: str) -> bool:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        try:
            with grpcclient.InferenceServerClient(address) as client:
                return bool(client.is_server_ready()) and all(
                    client.is_model_ready(m) for m in models
                )
        except InferenceServerException:
            return False

    return check


def grpc_health_ready(service: str = "") -> ReadyCheck:
    """Ready when grpc.health.v1 reports ``service`` ("" is the whole server) SERVING."""

    def check(address: str) -> bool:
        from asyncinfer.client.health import check_health

        return check_health(address, service, timeout=2.0) == "SERVING"

    return check
