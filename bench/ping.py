"""Unary ping throughput and latency: an asyncinfer service against a bare grpc.aio server doing
the same work, in the same run, with the same load client (a separate process), at concurrency 1,
16 and 64. Servers alternate within each round; figures are medians over the rounds.

    .venv/bin/python bench/ping.py [--rounds 3] [--seconds 3]

Goal: asyncinfer / bare >= 0.95 at every concurrency. Last line: JSON with `ratio_min`, and
`cpu_per_call_ratio_max`: the server CPU time per call, asyncinfer over bare (steadier than
throughput when the machine is shared). A third server, the same asyncinfer service with
tracing on at rate 1 (every call a span, exported over OTLP/HTTP to a receiver this script
runs), gives the cost of tracing: `tracing_rate1_ratio_min` (traced / untraced throughput) and
`tracing_rate1_cpu_ratio_max`. The plain asyncinfer server has tracing off (no span is made).
On a 2-core machine the client shares the cores with the server, as it does for both servers.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import psutil
from _harness import (
    BUILD,
    ROOT,
    RunningServer,
    ServerSpec,
    emit,
    median_of,
    python,
    ratio,
    run_json,
    serving,
)

from asyncinfer.tracing.receiver import OtlpReceiver

SERVING = r"serving on 127\.0\.0\.1:(\d+)"
LEVELS = (1, 16, 64)


def _always(address: str) -> bool:
    return True


def servers(otlp_url: str) -> list[ServerSpec]:
    ping = [python(), str(ROOT / "examples/01_ping/server.py"), "--port", "0"]
    trace = ["level=TIMESTAMPS", "rate=1", f"opentelemetry,url={otlp_url}"]
    return [
        ServerSpec("asyncinfer", ping, _always, port_pattern=SERVING),
        ServerSpec(
            "bare",
            [python(), str(ROOT / "bench/_bare_ping.py"), "--port", "0"],
            _always,
            port_pattern=SERVING,
        ),
        ServerSpec(
            "traced",
            [*ping, *(arg for setting in trace for arg in ("--trace-config", setting))],
            _always,
            port_pattern=SERVING,
        ),
    ]


def measure(server: RunningServer, concurrency: int, seconds: float) -> dict[str, float]:
    """One client run, plus the server's CPU time per call over it: on a shared, noisy machine
    CPU per call is steadier than calls per second and shows the framework's cost directly."""
    command = [
        python(),
        str(ROOT / "bench/_ping_client.py"),
        server.address,
        "--concurrency",
        str(concurrency),
        "--seconds",
        str(seconds),
    ]
    process = psutil.Process(server.process.pid)
    before = process.cpu_times()
    sample: dict[str, float] = run_json(command, timeout=seconds + 60)
    after = process.cpu_times()
    calls = sample["calls_total"]
    used = (after.user + after.system) - (before.user + before.system)
    sample["server_cpu_us_per_call"] = used / calls * 1e6 if calls else 0.0
    return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    samples: dict[tuple[str, int], list[dict[str, float]]] = {}
    with (
        OtlpReceiver() as receiver,
        serving(servers(receiver.url), Path(BUILD) / "bench-logs") as running,
    ):
        for round_ in range(args.rounds):
            for level in LEVELS:
                order = list(running.values()) if round_ % 2 == 0 else list(running.values())[::-1]
                for server in order:
                    sample = measure(server, level, args.seconds)
                    samples.setdefault((server.name, level), []).append(sample)
                    print(
                        f"round {round_ + 1} c={level:<3} {server.name:<10} "
                        f"{sample['throughput']:8.0f}/s p50 {sample['p50_ms']:.2f} ms "
                        f"p99 {sample['p99_ms']:.2f} ms "
                        f"cpu/call {sample['server_cpu_us_per_call']:.0f} us "
                        f"errors {sample['errors']}",
                        flush=True,
                    )
    keys = ["throughput", "p50_ms", "p99_ms", "server_cpu_us_per_call", "errors"]
    result: dict[str, object] = {
        "machine": f"{platform.node()} ({os.cpu_count()} cores)",
        "rounds": args.rounds,
        "seconds": args.seconds,
    }
    ratios, cpu_ratios, traced_ratios, traced_cpu = [], [], [], []
    for level in LEVELS:
        ours = median_of(samples[("asyncinfer", level)], keys)
        bare = median_of(samples[("bare", level)], keys)
        traced = median_of(samples[("traced", level)], keys)
        level_ratio = ratio(ours["throughput"], bare["throughput"])
        ratios.append(level_ratio or 0.0)
        cpu_ratio = ratio(ours["server_cpu_us_per_call"], bare["server_cpu_us_per_call"])
        cpu_ratios.append(cpu_ratio or 0.0)
        tracing_ratio = ratio(traced["throughput"], ours["throughput"])
        traced_ratios.append(tracing_ratio or 0.0)
        tracing_cpu = ratio(traced["server_cpu_us_per_call"], ours["server_cpu_us_per_call"])
        traced_cpu.append(tracing_cpu or 0.0)
        result[f"c{level}"] = {
            "asyncinfer": ours,
            "bare": bare,
            "traced": traced,
            "ratio": level_ratio,
            "cpu_per_call_ratio": cpu_ratio,
            "tracing_rate1_ratio": tracing_ratio,
            "tracing_rate1_cpu_ratio": tracing_cpu,
        }
        print(
            f"c={level:<3} asyncinfer {ours['throughput']:8.0f}/s  "
            f"bare {bare['throughput']:8.0f}/s  ratio {level_ratio:.3f}  "
            f"server CPU per call ratio {cpu_ratio:.3f}  "
            f"traced {traced['throughput']:8.0f}/s ({tracing_ratio:.3f} of untraced)"
        )
    result["ratio_min"] = min(ratios)
    result["cpu_per_call_ratio_max"] = max(cpu_ratios)
    result["tracing_rate1_ratio_min"] = min(traced_ratios)
    result["tracing_rate1_cpu_ratio_max"] = max(traced_cpu)
    result["spans_received"] = len(receiver.spans)
    emit(result)


if __name__ == "__main__":
    main()
