"""Per-request kernel-side costs of asyncinfer and the bare server on `simple`, for issue 10.

Starts each server as bench/infer_simple.py does, warms it, then drives a fixed number of
requests with bench/_load_client.py at each concurrency while ``perf stat`` (task-clock,
context switches, CPU migrations) or ``strace -f -c`` (syscall counts) watches every thread of
the server's processes, or reads each thread's user and system CPU time from /proc (threads).
Figures are divided by the requests the server worked on. Wall-clock
throughput is not reported: it means little on a shared machine; these counts do not depend on
the machine's load (strace's do slow the server, but count the same calls).

``framework`` (bench/_framework_server.py) is asyncinfer's gRPC framework around the bare server's
inference: asyncinfer - framework is the data plane's cost, framework - bare the framework's.

Run: .venv/bin/python bench/_percall_probe.py [--servers asyncinfer,framework,bare]
     [--concurrency 1,16,64] [--requests 4000] [--tool perf|strace|threads|both] [--repeats N]
The last stdout line is one JSON object: per server, per concurrency, per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _harness import BENCH, BUILD, RunningServer, python, run_json, serving
from _peers import asyncinfer_spec, bare_spec, framework_spec

PERF_EVENTS = "task-clock,context-switches,cpu-migrations,page-faults"


def _pids(server: RunningServer) -> list[int]:
    import psutil

    root = psutil.Process(server.process.pid)
    return [p.pid for p in (root, *root.children(recursive=True))]


def _load(address: str, concurrency: int, requests: int) -> dict[str, Any]:
    command = [
        python(), str(BENCH / "_load_client.py"), "--url", address, "--model", "simple",
        "--concurrency", str(concurrency), "--warmup", "0", "--duration", "1000",
        "--max-requests", str(requests),
    ]  # fmt: skip
    level: dict[str, Any] = run_json(command, timeout=600)["levels"][0]
    if level["errors"]:
        raise RuntimeError(f"load client errors: {level['first_error']}")
    return level


def _thread_times(pids: list[int]) -> dict[str, list[float]]:
    """User and system CPU seconds of every thread, summed by thread name."""
    tick = os.sysconf("SC_CLK_TCK")
    times: dict[str, list[float]] = {}
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                stat = (task / "stat").read_text()
            except FileNotFoundError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            entry = times.setdefault(re.sub(r"\d+$", "", name), [0.0, 0.0])
            entry[0] += int(fields[11]) / tick
            entry[1] += int(fields[12]) / tick
    return times


def _thread_probe(
    server: RunningServer, pids: list[int], concurrency: int, requests: int
) -> dict[str, Any]:
    """User and system CPU microseconds per request, per thread name and in all."""
    before = _thread_times(pids)
    level = _load(server.address, concurrency, requests)
    after = _thread_times(pids)
    sent = level["requests_total"]
    per_thread = {}
    for name, (user, system) in after.items():
        user_before, system_before = before.get(name, [0.0, 0.0])
        figures = [round((user - user_before) / sent * 1e6, 1),
                   round((system - system_before) / sent * 1e6, 1)]  # fmt: skip
        if sum(figures) > 0:
            per_thread[name] = figures
    total = [round(sum(v[i] for v in per_thread.values()), 1) for i in (0, 1)]
    return {"requests": sent, "us_user_sys": {"all": total, **per_thread}}


def _watch(tool: str, pids: list[int], out: Path) -> subprocess.Popen[bytes]:
    if tool == "perf":
        pid_list = ",".join(map(str, pids))
        command = ["perf", "stat", "-x", ",", "-e", PERF_EVENTS, "-p", pid_list, "-o", str(out)]
    else:
        command = ["strace", "-f", "-c", "-o", str(out)]
        for pid in pids:
            command += ["-p", str(pid)]
    watcher = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached to every thread before the first request
    return watcher


def _stop(watcher: subprocess.Popen[bytes]) -> None:
    watcher.send_signal(signal.SIGINT)
    watcher.wait(30)


def _perf_figures(text: str) -> dict[str, float]:
    figures = {}
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) > 3 and parts[2] in PERF_EVENTS.split(","):
            figures[parts[2]] = float(parts[0])
    return figures


def _strace_figures(text: str) -> dict[str, float]:
    figures: dict[str, float] = {}
    row = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\w+)\s*$")
    for line in text.splitlines():
        match = row.match(line)
        if match and match.group(3) != "total":
            figures[match.group(3)] = float(match.group(1))
    figures["total"] = sum(figures.values())
    return figures


def probe(server: RunningServer, tool: str, concurrency: int, requests: int) -> dict[str, Any]:
    pids = _pids(server)
    if tool == "threads":
        return _thread_probe(server, pids, concurrency, requests)
    out = BUILD / "bench-logs" / f"probe-{server.name}-{tool}-{concurrency}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    watcher = _watch(tool, pids, out)
    try:
        level = _load(server.address, concurrency, requests)
    finally:
        _stop(watcher)
    text = out.read_text()
    raw = _perf_figures(text) if tool == "perf" else _strace_figures(text)
    sent = level["requests_total"]
    per_request = {key: round(value / sent, 3) for key, value in sorted(raw.items())}
    if tool == "strace":  # the few calls that matter, and the total
        per_request = {k: v for k, v in per_request.items() if v >= 0.05 or k == "total"}
    return {"requests": sent, "per_request": per_request}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="asyncinfer,bare")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--tool", choices=("perf", "strace", "threads", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    makers = {
        "asyncinfer": lambda: asyncinfer_spec("simple"),
        "framework": lambda: framework_spec("simple"),
        "bare": lambda: bare_spec("simple"),
    }
    specs = [makers[name]() for name in args.servers.split(",")]
    tools = ("perf", "strace") if args.tool == "both" else (args.tool,)
    levels = [int(c) for c in args.concurrency.split(",")]
    result: dict[str, Any] = {}
    with serving(specs, BUILD / "bench-logs" / "percall_probe") as running:
        for server in running.values():
            _load(server.address, 16, 2000)  # warm-up: imports, plans, caches
        for tool in tools:
            for concurrency in levels:
                for repeat in range(args.repeats):
                    for server in running.values():  # interleaved: same machine mood
                        figures = probe(server, tool, concurrency, args.requests)
                        result.setdefault(server.name, {}).setdefault(str(concurrency), {})[
                            f"{tool}{repeat}"
                        ] = figures
                        print(server.name, concurrency, tool, figures, file=sys.stderr, flush=True)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
