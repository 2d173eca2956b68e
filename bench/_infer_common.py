"""What the inference benchmarks share: load-client rounds over several servers, perf_analyzer
runs, and the per-server, per-concurrency medians."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from _harness import (
    BENCH,
    HarnessError,
    RunningServer,
    cpu_seconds,
    median_of,
    python,
    ratio,
    run_json,
)

from asyncinfer._perf_analyzer import PerfAnalyzerError, run_perf_analyzer

Samples = dict[str, dict[int, list[dict[str, Any]]]]
FIGURES = ("throughput", "p50_ms", "p99_ms", "server_cpu_us_per_request")


def add_common_arguments(parser: argparse.ArgumentParser, *, concurrency: str, repeats: int,
                         duration: float) -> None:  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="one short round: a smoke run")
    parser.add_argument("--concurrency", default=concurrency, help="comma-separated levels")
    parser.add_argument("--repeats", type=int, default=repeats, help="rounds; medians are taken")
    parser.add_argument("--duration", type=float, default=duration, help="seconds per level")
    parser.add_argument("--warmup", type=float, default=0.3, help="unrecorded seconds per level")
    parser.add_argument("--no-perf-analyzer", action="store_true", help="load client only")


def apply_quick(args: argparse.Namespace) -> None:
    if args.quick:
        args.repeats, args.duration, args.warmup = 1, 0.3, 0.1


def levels(args: argparse.Namespace) -> list[int]:
    return [int(x) for x in args.concurrency.split(",") if x]


def load_rounds(
    servers: Sequence[RunningServer],
    model: str,
    args: argparse.Namespace,
    client_args: Sequence[str] = (),
) -> Samples:
    """``args.repeats`` rounds; each round runs the load client once against every server (in
    an order rotated per round, so slow drift of the machine does not favour one server)."""
    samples: Samples = {s.name: {c: [] for c in levels(args)} for s in servers}
    per_client = len(levels(args)) * (args.duration + args.warmup)
    for round_ in range(args.repeats):
        shift = round_ % len(servers)
        for server in [*servers[shift:], *servers[:shift]]:
            command = [
                python(), str(BENCH / "_load_client.py"), "--url", server.address,
                "--model", model, "--concurrency", args.concurrency,
                "--duration", str(args.duration), "--warmup", str(args.warmup), *client_args,
            ]  # fmt: skip
            cpu_before = cpu_seconds(server)
            result = run_json(command, timeout=60 + 3 * per_client)
            cpu_used = cpu_seconds(server) - cpu_before
            sent = sum(level.get("requests_total", 0) for level in result["levels"])
            for level in result["levels"]:
                # One figure per round (CPU is read around the whole client run): the server's
                # CPU time per request, steadier than throughput on a shared machine.
                level["server_cpu_us_per_request"] = cpu_used / sent * 1e6 if sent else None
                samples[server.name][level["concurrency"]].append(level)
    return samples


def summarize(samples: Samples) -> dict[str, dict[str, dict[str, Any]]]:
    """Per server and concurrency: the median figures, total errors and the first error."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for name, by_level in samples.items():
        summary[name] = {}
        for concurrency, runs in by_level.items():
            figures: dict[str, Any] = median_of(runs, FIGURES)
            figures["errors"] = sum(run["errors"] for run in runs)
            first = next((run["first_error"] for run in runs if run["first_error"]), None)
            if first:
                figures["first_error"] = first
            figures["runs"] = len(runs)
            summary[name][str(concurrency)] = figures
    return summary


def perf_analyzer_figures(
    servers: Sequence[RunningServer],
    model: str,
    args: argparse.Namespace,
    shapes: Mapping[str, Sequence[int]] | None = None,
    extra: Sequence[str] = (),
) -> dict[str, dict[str, dict[str, Any]]]:
    """perf_analyzer at each level against each server, in ``args.repeats`` interleaved rounds
    (the server order rotated per round, as the load client's); per server and level, the
    medians of the rounds that measured. A failure is recorded, not raised. ``extra``: more
    perf_analyzer flags (``--streaming``: every request on one ModelStreamInfer stream per
    concurrent client)."""
    # Quick runs only prove the path works: short windows, loose stability. Full runs follow
    # ../shared/TOOLS.md's advice for this noisy machine (long windows, retry once).
    interval, stability = (500, 100) if args.quick else (1000, 60)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        server.name: {str(level): [] for level in levels(args)} for server in servers
    }
    for round_ in range(args.repeats):
        shift = round_ % len(servers)
        for server in [*servers[shift:], *servers[:shift]]:
            for concurrency in levels(args):
                runs[server.name][str(concurrency)].append(
                    _one_perf_analyzer(
                        server, model, concurrency, interval, stability, shapes, extra
                    )
                )
    return {
        name: {level: _pa_medians(rounds) for level, rounds in by_level.items()}
        for name, by_level in runs.items()
    }


def _pa_medians(rounds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One server and level: the medians of the rounds that measured, with every round's
    attempts and errors summed; the first failure's text when no round measured."""
    measured = [r for r in rounds if "error" not in r]
    if not measured:
        return {"error": rounds[0]["error"], "runs": 0}
    figures: dict[str, Any] = median_of(measured, ("throughput", "p50_ms", "p99_ms"))
    figures["attempts"] = sum(r["attempts"] for r in measured)
    figures["errors"] = sum(r["errors"] for r in measured)
    figures["runs"] = len(measured)
    failed = [r["error"] for r in rounds if "error" in r]
    if failed:
        figures["error"] = f"{len(failed)} of {len(rounds)} rounds failed: {failed[0]}"
    return figures


def _one_perf_analyzer(
    server: RunningServer,
    model: str,
    concurrency: int,
    interval_ms: int,
    stability: int,
    shapes: Mapping[str, Sequence[int]] | None,
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    run = run_perf_analyzer(
        server.address, model, concurrency=concurrency, shapes=shapes,
        measurement_interval_ms=interval_ms, stability_percent=stability, max_trials=6,
        kill_after=90, extra=extra,
    )  # fmt: skip
    try:
        result = asyncio.run(run)
    except PerfAnalyzerError as exc:
        return {"error": str(exc)}
    row = result.row(concurrency)
    return {
        "throughput": row.throughput,
        "p50_ms": row.p50_us / 1000,
        "p99_ms": row.p99_us / 1000,
        "attempts": result.attempts,
        "errors": len(result.errors),
    }


def ratios(
    summary: Mapping[str, Mapping[str, Mapping[str, Any]]], numerator: str, denominator: str
) -> dict[str, float | None]:
    """Throughput of ``numerator`` over ``denominator`` at each concurrency (None where either
    has no figure: a failed perf_analyzer run)."""
    return {
        level: ratio(figures.get("throughput"), summary[denominator][level].get("throughput"))
        for level, figures in summary[numerator].items()
    }


def peer_comparison(
    load: Mapping[str, Mapping[str, Mapping[str, Any]]],
    pa: Mapping[str, Mapping[str, Mapping[str, Any]]],
    peer: str,
    key: str,
) -> dict[str, Any]:
    """asyncinfer against ``peer``: ``ratio_vs_<key>`` per concurrency and its minimum (load
    client), the same from perf_analyzer, and server CPU per request over the peer's."""
    result: dict[str, Any] = {}
    if "asyncinfer" not in load or peer not in load:
        return result
    result[f"ratio_vs_{key}"] = ratios(load, "asyncinfer", peer)
    result[f"ratio_vs_{key}_min"] = minimum(result[f"ratio_vs_{key}"])
    result[f"server_cpu_per_request_vs_{key}"] = cpu_ratio(load, "asyncinfer", peer)
    if "asyncinfer" in pa and peer in pa:
        result[f"perf_analyzer_ratio_vs_{key}"] = ratios(pa, "asyncinfer", peer)
        result[f"perf_analyzer_ratio_vs_{key}_min"] = minimum(
            result[f"perf_analyzer_ratio_vs_{key}"]
        )
    return result


def cpu_ratio(
    summary: Mapping[str, Mapping[str, Mapping[str, Any]]], numerator: str, denominator: str
) -> float | None:
    """Server CPU per request of ``numerator`` over ``denominator`` (median over the levels)."""
    values = [
        ratio(figures.get("server_cpu_us_per_request"),
              summary[denominator][level].get("server_cpu_us_per_request"))
        for level, figures in summary[numerator].items()
    ]  # fmt: skip
    numbers = sorted(v for v in values if v is not None)
    return numbers[len(numbers) // 2] if numbers else None


def minimum(values: Mapping[str, float | None]) -> float | None:
    numbers = [v for v in values.values() if v is not None]
    return min(numbers) if len(numbers) == len(values) and numbers else None


def failures(*sections: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """Every server/level that had request errors or a perf_analyzer failure."""
    found = []
    for section in sections:
        for name, by_level in section.items():
            for level, figures in by_level.items():
                if figures.get("errors") or figures.get("error"):
                    detail = figures.get("error") or figures.get("first_error") or "errors"
                    found.append(f"{name} c={level}: {detail}")
    return found


def check_servers(wanted: Sequence[str], known: Sequence[str]) -> None:
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise HarnessError(f"unknown servers {unknown}; choose from {list(known)}")
